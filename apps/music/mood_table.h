// Mood tables: the CSV catalogue `emotune recommend` ranks (data/music/tracks.csv or a user's own).
//
// Format (RFC 4180 CSV, UTF-8, header row, any column order, unknown columns ignored):
//   required  artist, title, valence, energy   (valence and energy in [0, 1])
//   optional  id, popularity (finite, >= 0; any scale), mood (free text)
// "name" is accepted for "title" and "arousal" for "energy" so a Spotify-style table
// (e.g. data_moods.csv) can be passed as it is. Every problem is reported as an emotune::Error
// naming file:line:column and the column name, never silently skipped: a recommendation from a
// half-read table would look plausible and be wrong.
#pragma once
#include <string>
#include <vector>

namespace emotune {

struct Track {
  std::string id;      // empty when the table has no id column
  std::string artist;
  std::string title;
  std::string mood;    // empty when the table has no mood column
  double valence = 0;  // [0, 1]: negative .. positive
  double energy = 0;   // [0, 1]: calm .. intense (arousal)
  double popularity = 0;  // 0 when the table has no popularity column
  int line = 0;           // 1-based line of the row in its file, for messages
};

struct MoodTable {
  std::string path;
  std::vector<Track> tracks;
  bool has_id = false, has_popularity = false, has_mood = false;
};

// Reads a table from disk. Throws emotune::Error for a missing/unreadable file, a missing column,
// a malformed row or a bad number (non-numeric, NaN/inf, valence/energy outside [0, 1]).
MoodTable read_mood_table(const std::string& path);
// Same, from text already in memory; `name` is used in messages (and fuzzing).
MoodTable parse_mood_table(const std::string& text, const std::string& name);

}  // namespace emotune
