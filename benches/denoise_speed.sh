#!/usr/bin/env bash
# benches/denoise_speed.sh — nitrate denoise against FFmpeg nlmeans, end to end, on the CPU.
#
# Usage: benches/denoise_speed.sh SET [ROUNDS]
#
#   SET     a set made by `nitrate degrade --defects grain` (SET/degraded/ 16-bit PNG frames,
#           SET/clean/ the truth)
#   ROUNDS  how many times each is run, interleaved so both see the same machine (default 3)
#
# Both read SET/degraded/ and write 16-bit RGB PNG frames, as a user would run them:
#   nitrate  restore --stages denoise --backend cpu, the denoiser's defaults (a preset with
#            only `name = "denoise"`)
#   FFmpeg   nlmeans at its best setting for this grain (s=3, patch 7, research 15: the sweep
#            in benches/peers.sh), in 8-bit YUV 4:4:4 as nlmeans needs, back to rgb48be
# Prints each run's wall-clock and user seconds, the median wall-clock of each, their ratio,
# and both results' PSNR and SSIM against SET/clean/ (`nitrate compare`).
#
# Environment: NITRATE (default target/release/nitrate beside this script), FFMPEG (ffmpeg),
# WORK (scratch folder, default a temporary one, removed at the end), SET (denoise settings
# for nitrate, e.g. SET="radius=1": passed as --set denoise.KEY=VALUE, space-separated).
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 2
fi
here=$(cd "$(dirname "$0")/.." && pwd)
set_dir=$(cd "$1" && pwd)
rounds=${2:-3}
FFMPEG=${FFMPEG:-ffmpeg}
NITRATE=${NITRATE:-$here/target/release/nitrate}
[[ -x $NITRATE ]] || { echo "denoise_speed.sh: $NITRATE: no nitrate binary" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "denoise_speed.sh: /usr/bin/time not found (package: time)" >&2; exit 1; }
[[ -d $set_dir/degraded && -d $set_dir/clean ]] ||
    { echo "denoise_speed.sh: $set_dir: no degraded/ and clean/ folders" >&2; exit 1; }
work=${WORK:-$(mktemp -d)}
[[ -n ${WORK:-} ]] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work/ffmpeg"
printf 'version = 1\n[[stage]]\nname = "denoise"\n' >"$work/denoise.toml"

first=$(ls "$set_dir/degraded" | grep -m1 -E '^[0-9]+\.png$') ||
    { echo "denoise_speed.sh: $set_dir/degraded: no numbered PNG frames" >&2; exit 1; }
digits=${#first}; digits=$((digits - 4)); start=$((10#${first%.png}))
pattern="$set_dir/degraded/%0${digits}d.png"

timed() { # LABEL CMD...: runs CMD, prints "LABEL: wall, user", keeps the wall-clock seconds
    local label=$1 t
    shift
    /usr/bin/time -o "$work/time" -f '%e %U' "$@" >/dev/null 2>"$work/log" ||
        { cat "$work/log" >&2; exit 1; }
    t=$(tail -1 "$work/time")
    echo "$label: ${t% *} s wall, ${t#* } s user"
    echo "${t% *}" >>"$work/times.$label"
}
sets=()
for kv in ${SET:-}; do sets+=(--set "denoise.$kv"); done
for ((r = 1; r <= rounds; r++)); do
    timed nitrate "$NITRATE" restore "$set_dir/degraded" "$work/nitrate" --preset "$work/denoise.toml" \
        --stages denoise --backend cpu -q --overwrite "${sets[@]}"
    timed nlmeans "$FFMPEG" -hide_banner -nostdin -loglevel error -y -framerate 24 \
        -start_number "$start" -i "$pattern" \
        -sws_flags bicubic+accurate_rnd+full_chroma_int \
        -vf "format=yuv444p,nlmeans=s=3,format=rgb48be" -start_number "$start" \
        -pix_fmt rgb48be "$work/ffmpeg/%0${digits}d.png"
done
median() { sort -g "$1" | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
n=$(median "$work/times.nitrate"); f=$(median "$work/times.nlmeans")
echo "median wall: nitrate $n s, nlmeans $f s: nitrate $(awk -v a="$f" -v b="$n" 'BEGIN {printf "%.1f", a / b}')x faster"
for who in nitrate ffmpeg; do
    echo "$who: $("$NITRATE" compare "$set_dir/clean" "$work/$who" | grep -E '^ *(PSNR|SSIM)' | tr -s ' ' | tr '\n' ';')"
done
