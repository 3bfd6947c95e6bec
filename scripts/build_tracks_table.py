#!/usr/bin/env python3
"""Build data/music/tracks.csv from the Deezer Mood Detection Dataset (python3 stdlib only).

Source: deezer/deezer_mood_detection_dataset @ 9c6e1c5 (train.csv, validation.csv, test.csv),
released by Deezer Research with the paper its README names: Remi Delbouys, Romain Hennequin,
Francesco Piccoli, "End-to-end Multimodal Music Mood Detection Based On Audio And Lyrics"
(published at ISMIR 2018 as "Music Mood Detection Based On Audio And Lyrics With Deep Neural
Net", arXiv:1809.07276).

Deezer's valence and arousal are standardised scores (mean ~0, about -2.3..2.8) derived from
listeners' tags. They are mapped to [0, 1] by their mid-rank empirical CDF over all rows:

    p(x) = (#{rows with value < x} + 0.5 * #{rows with value == x}) / N

so 0.80 valence means "more positive than about 80% of the catalogue". The map is monotone (the
order of tracks on each axis is unchanged), scale-free (the standardised units have no meaning of
their own), and it gives both axes the same uniform spread, so a Euclidean distance weighs valence
and energy equally. Ties (many tracks share a tag-derived point) keep one shared value.

Usage: python3 scripts/build_tracks_table.py [DEEZER_DIR] [OUT_CSV]
  defaults: ../shared/data/music/deezer  data/music/tracks.csv  (relative to the repository)
"""
import bisect
import csv
import os
import sys

SPLITS = ("train.csv", "validation.csv", "test.csv")


def mid_rank_cdf(values):
    ordered = sorted(values)
    n = len(ordered)

    def p(x):
        lo = bisect.bisect_left(ordered, x)
        hi = bisect.bisect_right(ordered, x)
        return (lo + 0.5 * (hi - lo)) / n

    return p


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "..", "shared", "data", "music", "deezer")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(root, "data", "music", "tracks.csv")

    rows = []
    for name in SPLITS:
        with open(os.path.join(src, name), newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                rows.append(r)
    pv = mid_rank_cdf([float(r["valence"]) for r in rows])
    pa = mid_rank_cdf([float(r["arousal"]) for r in rows])

    seen_ids, seen_names, kept, dropped = set(), set(), [], 0
    for r in sorted(rows, key=lambda r: int(r["dzr_sng_id"])):
        artist = " ".join(r["artist_name"].split())
        title = " ".join(r["track_name"].split())
        key = (artist.casefold(), title.casefold())
        if not artist or not title or r["dzr_sng_id"] in seen_ids or key in seen_names:
            dropped += 1
            continue
        seen_ids.add(r["dzr_sng_id"])
        seen_names.add(key)
        kept.append((r["dzr_sng_id"], artist, title,
                     "%.4f" % pv(float(r["valence"])), "%.4f" % pa(float(r["arousal"]))))

    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "artist", "title", "valence", "energy"])
        w.writerows(kept)
    os.replace(tmp, out)
    print("%s: %d tracks from %d rows (%d duplicates or empty names dropped), %d bytes"
          % (out, len(kept), len(rows), dropped, os.path.getsize(out)))


if __name__ == "__main__":
    main()
