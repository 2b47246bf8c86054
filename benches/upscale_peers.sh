#!/usr/bin/env bash
# benches/upscale_peers.sh — nitrate upscale against FFmpeg's scalers on clean frames.
#
# Usage: benches/upscale_peers.sh CLEAN [WORK]
#
#   CLEAN  a folder of clean frames (e.g. ../shared/footage/clean/bikes)
#   WORK   scratch folder (default: a temporary one, removed at the end)
#
# CLEAN is downscaled by 2 with FFmpeg's area filter (16-bit PNG, so nothing is rounded to 8
# bits), upscaled back by FFmpeg (lanczos, bicubic) and by nitrate (each method), and each
# result scored against CLEAN with `nitrate compare` (PSNR: mean of the per-frame dB; SSIM).
# Prints one row per upscaler with its wall-clock seconds.
#
# Environment: NITRATE (default target/release/nitrate beside this script), FFMPEG (ffmpeg),
# BACKEND (nitrate --backend, default cpu), KEEP=1 keeps WORK.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 2
fi
here=$(cd "$(dirname "$0")/.." && pwd)
clean=$(cd "$1" && pwd)
work=${2:-$(mktemp -d)}
mkdir -p "$work"
FFMPEG=${FFMPEG:-ffmpeg}
NITRATE=${NITRATE:-$here/target/release/nitrate}
BACKEND=${BACKEND:-cpu}
command -v jq >/dev/null || { echo "upscale_peers.sh: jq not found" >&2; exit 1; }
[[ -x $NITRATE ]] || { echo "upscale_peers.sh: $NITRATE: no nitrate binary" >&2; exit 1; }

first=$(ls "$clean" | grep -Ei '\.(png|tif|tiff|dpx|exr)$' | head -1)
[[ -n $first ]] || { echo "upscale_peers.sh: $clean: no frames" >&2; exit 1; }
ext=${first##*.}
digits=$(sed -E 's/^[^0-9]*([0-9]+)\..*/\1/' <<<"$first")
prefix=${first%%"$digits".*}
pattern="$prefix%0${#digits}d.$ext"
opat="$prefix%0${#digits}d.png"
start=$((10#$digits))
size=$("$NITRATE" probe "$clean" 2>/dev/null | grep -Eo '[0-9]+x[0-9]+' | head -1)
w=${size%x*} h=${size#*x}

echo "clean    $clean (${w}x${h}, from $first)"
echo "machine  $(uname -n), $(nproc) cores"
echo "ffmpeg   $("$FFMPEG" -hide_banner -version | head -1)"
echo

mkdir -p "$work/low"
"$FFMPEG" -v error -y -start_number "$start" -i "$clean/$pattern" \
    -vf "scale=trunc(iw/2):trunc(ih/2):flags=area+accurate_rnd,format=rgb48be" \
    -start_number "$start" "$work/low/$opat"

row() { printf '%-34s %8s %7s %8s\n' "$@"; }
score() { # NAME DIR SECONDS
    local json
    json=$("$NITRATE" compare "$clean" "$2" --json)
    row "$1" "$(jq -r '.summary.mean_psnr | . * 100 | round / 100' <<<"$json")" \
        "$(jq -r '.summary.mean_ssim | . * 10000 | round / 10000' <<<"$json")" "$3"
}
row upscaler "PSNR dB" SSIM seconds
for flags in lanczos bicubic; do
    out=$work/ffmpeg_$flags
    mkdir -p "$out"
    t0=$(date +%s.%N)
    "$FFMPEG" -v error -y -start_number "$start" -i "$work/low/$opat" \
        -vf "scale=$w:$h:flags=$flags+accurate_rnd,format=rgb48be" -start_number "$start" "$out/$opat"
    score "ffmpeg $flags" "$out" "$(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)")"
done
for method in lanczos edge multi; do
    out=$work/nitrate_$method
    t0=$(date +%s.%N)
    "$NITRATE" restore "$work/low" "$out" -q --overwrite --backend "$BACKEND" --format png16 \
        --stages upscale --set upscale.method="$method" --set upscale.width="$w" --set upscale.height="$h" \
        2>"$work/$method.err" || { cat "$work/$method.err" >&2; exit 1; }
    score "nitrate upscale $method ($BACKEND)" "$out" "$(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)")"
done
[[ ${KEEP:-0} == 1 || $# -eq 2 ]] || rm -rf "$work"
