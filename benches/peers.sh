#!/usr/bin/env bash
# benches/peers.sh — score FFmpeg's nearest filters on a degraded set with `nitrate compare`.
#
# Usage: benches/peers.sh SET [WORK]
#
#   SET    a set made by `nitrate degrade`: SET/degraded/ (frames to restore), SET/clean/
#          (ground truth), SET/mask/ (defect masks, optional: without it the mask columns are "-")
#   WORK   scratch folder for each filter's output frames (default: SET/peers); every row gets
#          WORK/<row>/frames/ (16-bit PNG, the same names as SET/degraded/) and WORK/<row>/log
#
# Environment:
#   NITRATE      nitrate binary (default: target/release/nitrate beside this script)
#   FFMPEG       ffmpeg (default: ffmpeg); FFPROBE likewise
#   QUICK=1      one setting per filter, no sweeps
#   ONLY=REGEX   run only the rows whose name or settings match (extended regex)
#   MARGIN=PX    border left out of every measure (nitrate compare --margin; default 0)
#   KEEP=1       keep each row's frames after scoring (default: removed, to save disk)
#   NO_COMPARE=1 run the filters and check their output only (no nitrate needed)
#
# Prints one table: filter, settings, working pixel format, PSNR (mean of the per-frame dB),
# SSIM (mean), PSNR inside / outside the masks (pooled over the sequence), residual shake (px
# RMS after drift removal), flicker (RMS of the frame-to-frame change of the mean-luma error),
# and the filter's wall-clock seconds (ffmpeg only, not scoring). The first row, "degraded",
# scores SET/degraded/ itself: the baseline every filter must beat. "roundtrip" rows pass the
# frames through a working format with no filter, showing what the conversion alone costs.
#
# Alignment: every filter's output frame t must be input frame t (checked on a ramp of grey
# frames with FFmpeg 5.1): true of all rows except tmedian, which is padded to make it so.
#
# Frames: the input pattern (prefix, digit count, extension, first number) is derived from the
# files in SET/degraded/; ffmpeg's image2 demuxer stops at the first gap, so the numbers must be
# contiguous. Output is rgb48be PNG, or gray16be where SET/clean/ is grey, so the planes match.
# Each filter runs in a pixel format it supports (FFmpeg would otherwise convert silently):
# 16-bit planar where the filter has it; nlmeans, removegrain, deshake and vid.stab are 8-bit
# only in FFmpeg 5.1 and run in 8-bit (noted in the "fmt" column). RGB<->YUV conversions use
# swscale with accurate rounding and full chroma interpolation.
#
# Sweeps (all cheap on small sets; QUICK=1 keeps only the first of each):
#   hqdn3d        luma_spatial 4 (default), 2, 6, 8 (chroma and temporal follow the defaults'
#                 ratios)
#   nlmeans       s 1 (default), 2, 3, 4; patch 7, research 15 (defaults)
#   bm3d          sigma 4, 8, 16, 32, 48, 64 (single-input basic estimate; sigma in 8-bit code
#                 units as FFmpeg scales it by bit depth)
#   fftdnoiz      sigma 4, then 8, 16, 24, 32 with one frame before and after (temporal)
#   (the denoiser sweeps reach past the best setting for `nitrate degrade --defects grain` at
#   strength 1 over clean/bikes: hqdn3d 6-8, nlmeans 3, bm3d 32-48, fftdnoiz 24-32)
#   atadenoise    defaults (9 frames), then 15 frames
#   tmedian       radius 1, 2
#   removegrain   mode 4 (3x3 median), 17 (clipping to the neighbourhood's min/max pairs)
#   deflicker     size 5 (default), 15; mode am
#   vid.stab      detect shakiness 5 accuracy 15; transform smoothing 10, 30; optzoom 0
#   deshake       defaults (rx=ry=16, edge mirror)
#   normalize     smoothing 24 with independence 0, then smoothing 48 strength 0.5; smoothing 24
#                 and 48 with independent channels (independence 1)
#   median        horizontal radius 3 (scratches): blind, and inside SET/mask/ only (oracle)
#   delogo        a box per scratch track of SET/truth.json (oracle)
#   chain         every damage at once, as an FFmpeg user would chain the nearest filters:
#                 deshake, deflicker, tmedian, hqdn3d, normalize (the all-damage comparison for
#                 a preset; deshake is 8-bit, the rest run in 16-bit)
#   upscale       SET/clean/ down by 2 (area), back up with lanczos (and bicubic): the upscaler
#                 alone against the clean frames, not a restoration of SET/degraded/
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

if [[ $# -lt 1 || $# -gt 2 || $1 == -h || $1 == --help ]]; then
    usage
    [[ $# -ge 1 && ($1 == -h || $1 == --help) ]] && exit 0
    exit 2
fi

here=$(cd "$(dirname "$0")/.." && pwd)
set_dir=$(cd "$1" && pwd)
work=${2:-$set_dir/peers}
mkdir -p "$work"
work=$(cd "$work" && pwd)
FFMPEG=${FFMPEG:-ffmpeg}
FFPROBE=${FFPROBE:-ffprobe}
NITRATE=${NITRATE:-$here/target/release/nitrate}
QUICK=${QUICK:-0}
ONLY=${ONLY:-}
MARGIN=${MARGIN:-0}
KEEP=${KEEP:-0}
NO_COMPARE=${NO_COMPARE:-0}

die() {
    echo "peers.sh: $*" >&2
    exit 1
}

degraded=$set_dir/degraded
clean=$set_dir/clean
mask=$set_dir/mask
[[ -d $degraded ]] || die "$degraded: no such folder (expected a set made by nitrate degrade)"
[[ -d $clean ]] || die "$clean: no such folder (expected a set made by nitrate degrade)"
[[ -d $mask ]] || mask=
command -v "$FFMPEG" >/dev/null || die "$FFMPEG not found (apt-get install -y ffmpeg)"
command -v "$FFPROBE" >/dev/null || die "$FFPROBE not found (apt-get install -y ffmpeg)"
if [[ $NO_COMPARE != 1 ]]; then
    [[ -x $NITRATE ]] || die "$NITRATE: no nitrate binary (cargo build --release, or set NITRATE)"
    command -v jq >/dev/null || die "jq not found (apt-get install -y jq): needed to read nitrate compare --json"
fi

# ---- the frame pattern of a folder: PREFIX, DIGITS (0: unpadded), EXT, START, COUNT ----------
derive_pattern() {
    local dir=$1 f name prefix ext num width=-1 padded=1
    local -a numbers=()
    PREFIX= EXT=
    shopt -s nullglob nocaseglob
    for f in "$dir"/*.{png,tif,tiff,dpx,exr,jpg,jpeg}; do
        name=${f##*/}
        [[ $name == .* ]] && continue
        [[ $name =~ ^(.*[^0-9])?([0-9]+)\.([A-Za-z0-9]+)$ ]] || continue
        prefix=${BASH_REMATCH[1]} num=${BASH_REMATCH[2]} ext=${BASH_REMATCH[3]}
        if [[ -z $EXT ]]; then
            PREFIX=$prefix EXT=$ext
        elif [[ $prefix != "$PREFIX" || $ext != "$EXT" ]]; then
            die "$dir: mixed frame names ($PREFIX#.$EXT and $prefix#.$ext); keep one sequence per folder"
        fi
        if ((width < 0)); then width=${#num}; elif ((width != ${#num})); then padded=0; fi
        numbers+=($((10#$num)))
    done
    shopt -u nullglob nocaseglob
    ((${#numbers[@]} > 0)) || die "$dir: no numbered frames (.png .tif .dpx .exr .jpg)"
    mapfile -t numbers < <(printf '%s\n' "${numbers[@]}" | sort -n)
    START=${numbers[0]}
    COUNT=${#numbers[@]}
    local last=${numbers[COUNT - 1]}
    ((last - START + 1 == COUNT)) ||
        die "$dir: frame numbers $START..$last have gaps ($COUNT files); ffmpeg's image2 reader stops at the first gap"
    # Padded names share one width; unpadded ones ("1.png".."10.png") use %d.
    if ((padded)); then DIGITS=$width; else DIGITS=0; fi
}

# A printf pattern for ffmpeg: "%" in the prefix doubled.
pattern() {
    local p=${PREFIX//%/%%}
    if ((DIGITS > 0)); then printf '%s%%0%dd.%s' "$p" "$DIGITS" "$1"; else printf '%s%%d.%s' "$p" "$1"; fi
}

derive_pattern "$degraded"
in_pattern=$degraded/$(pattern "$EXT")
out_pattern=$(pattern png)
in_start=$START
in_count=$COUNT
first_name=$(printf "$(pattern "$EXT")" "$START")

probe() { # file FIELD -> the stream's FIELD (pix_fmt, width, height)
    "$FFPROBE" -v error -select_streams v:0 -show_entries "stream=$2" -of default=noprint_wrappers=1:nokey=1 "$1"
}
clean_first=$(
    shopt -s nullglob nocaseglob
    for f in "$clean"/*.{png,tif,tiff,dpx,exr,jpg,jpeg}; do
        echo "$f"
        break
    done
)
[[ -n $clean_first ]] || die "$clean: no frames"
width=$(probe "$clean_first" width)
height=$(probe "$clean_first" height)
clean_fmt=$(probe "$clean_first" pix_fmt)
case $clean_fmt in
gray* | ya8 | ya16*) grey=1 out_fmt=gray16be ;;
*) grey=0 out_fmt=rgb48be ;;
esac
sws="-sws_flags bicubic+accurate_rnd+full_chroma_int"

echo "set      $set_dir ($in_count frames, $in_pattern from $in_start, ${width}x${height}, clean $clean_fmt)"
echo "work     $work"
echo "ffmpeg   $("$FFMPEG" -hide_banner -version | head -1)"
[[ $NO_COMPARE == 1 ]] || echo "nitrate  $NITRATE"
echo "machine  $(uname -n), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //')"
echo

# ---- scoring and the table ---------------------------------------------------------------
results=()
fmt_row() {
    printf '%-13s %-44s %-12s %8s %7s %8s %8s %7s %8s %7s\n' "$@"
}

# A number rounded to $2 decimals; "inf", "-" and other text unchanged.
num() {
    if [[ $1 =~ ^-?[0-9.]+([eE][-+]?[0-9]+)?$ ]]; then printf "%.$2f" "$1"; else printf '%s' "$1"; fi
}

# score ROWNAME SETTINGS FMT FRAMES_DIR SECONDS LOGDIR
score() {
    local name=$1 settings=$2 fmt=$3 frames=$4 secs=$5 log=$6/compare.err json cols
    if [[ $NO_COMPARE == 1 ]]; then
        results+=("$(fmt_row "$name" "$settings" "$fmt" - - - - - - "$secs")")
        return
    fi
    local args=(compare "$clean" "$frames" --json)
    [[ -n $mask ]] && args+=(--mask "$mask")
    ((MARGIN > 0)) && args+=(--margin "$MARGIN")
    if ! json=$("$NITRATE" "${args[@]}" 2>"$log"); then
        results+=("$(fmt_row "$name" "$settings" "$fmt" "compare failed: $(head -c 200 "$log" | tr '\n' ' ')" "" "" "" "" "" "$secs")")
        return
    fi
    # PSNR is "inf" for identical frames and null (shown "-") where there are no masks.
    cols=$(jq -r '.summary | [.mean_psnr, .mean_ssim, .psnr_in_mask, .psnr_out_mask, .shake_px, .flicker_rms]
        | map(if . == null then "-" else tostring end) | @tsv' <<<"$json")
    local psnr ssim pin pout shake flick
    IFS=$'\t' read -r psnr ssim pin pout shake flick <<<"$cols"
    results+=("$(fmt_row "$name" "$settings" "$fmt" "$(num "$psnr" 2)" "$(num "$ssim" 4)" "$(num "$pin" 2)" \
        "$(num "$pout" 2)" "$(num "$shake" 3)" "$(num "$flick" 5)" "$secs")")
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

selected() { [[ -z $ONLY ]] || [[ "$1 $2" =~ $ONLY ]]; }

row_index=0
# run ROWNAME SETTINGS WORKFMT GRAPH [SOURCE]: GRAPH runs on the frames converted to WORKFMT.
# For two-pass vid.stab, GRAPH is "vidstab:DETECT_OPTS:TRANSFORM_OPTS".
run() {
    local name=$1 settings=$2 wf=$3 graph=$4 src=${5:-$degraded}
    selected "$name" "$settings" || return 0
    row_index=$((row_index + 1))
    local dir
    dir=$work/$(printf '%02d' $row_index)-$name
    rm -rf "$dir"
    mkdir -p "$dir/frames"
    local src_pattern=$src/$(pattern "$EXT")
    if [[ $src != "$degraded" ]]; then
        local save_prefix=$PREFIX save_digits=$DIGITS save_ext=$EXT save_start=$START save_count=$COUNT
        derive_pattern "$src"
        src_pattern=$src/$(pattern "$EXT")
        ((START == save_start && COUNT == save_count)) || die "$src: frames $START.. ($COUNT) differ from $degraded"
        PREFIX=$save_prefix DIGITS=$save_digits EXT=$save_ext START=$save_start COUNT=$save_count
    fi
    local input=(-framerate 24 -start_number "$in_start" -i "$src_pattern")
    local output=(-start_number "$in_start" -pix_fmt "$out_fmt" "$dir/frames/$out_pattern")
    local t0 t1 ok=1
    echo "[$row_index] $name $settings" >&2
    t0=$(now)
    if [[ $graph == vidstab:* ]]; then
        local rest=${graph#vidstab:}
        local detect=${rest%%|*} transform=${rest#*|}
        # vid.stab writes and reads its transforms file by a relative name: run in the row's folder.
        (cd "$dir" && "$FFMPEG" -hide_banner -nostdin -loglevel error -y $sws "${input[@]}" \
            -vf "format=$wf,vidstabdetect=$detect:result=transforms.trf" -f null - &&
            "$FFMPEG" -hide_banner -nostdin -loglevel error -y $sws "${input[@]}" \
                -vf "format=$wf,vidstabtransform=$transform:input=transforms.trf,format=$out_fmt" "${output[@]}") \
            >"$dir/log" 2>&1 || ok=0
    elif [[ $graph == complex:* ]]; then
        # A two-input graph: [0:v] the frames, [1:v] SET/mask/ (gray); WORKFMT and the output
        # format are applied inside the graph ("WF" and "OUT" are replaced).
        local fc=${graph#complex:}
        fc=${fc//WF/$wf}
        fc=${fc//OUT/$out_fmt}
        "$FFMPEG" -hide_banner -nostdin -loglevel error -y $sws "${input[@]}" \
            -framerate 24 -start_number "$in_start" -i "$mask/$(pattern png)" \
            -filter_complex "$fc" "${output[@]}" >"$dir/log" 2>&1 || ok=0
    else
        local vf="format=$wf"
        [[ -n $graph ]] && vf+=",$graph"
        vf+=",format=$out_fmt"
        "$FFMPEG" -hide_banner -nostdin -loglevel error -y $sws "${input[@]}" -vf "$vf" "${output[@]}" \
            >"$dir/log" 2>&1 || ok=0
    fi
    t1=$(now)
    local secs
    secs=$(elapsed "$t0" "$t1")
    local got
    got=$(find "$dir/frames" -maxdepth 1 -name '*.png' | wc -l)
    if ((!ok)); then
        results+=("$(fmt_row "$name" "$settings" "$wf" "ffmpeg failed: $(tail -n 2 "$dir/log" | tr '\n' ' ' | head -c 200)" "" "" "" "" "" "$secs")")
    elif ((got != in_count)); then
        results+=("$(fmt_row "$name" "$settings" "$wf" "wrote $got of $in_count frames" "" "" "" "" "" "$secs")")
    else
        score "$name" "$settings" "$wf" "$dir/frames" "$secs" "$dir"
    fi
    [[ $KEEP == 1 ]] || rm -rf "$dir/frames"
}

sweep() { [[ $QUICK != 1 ]]; }

# Working formats: 16-bit planar RGB (or grey), 16-bit YUV 4:4:4, 8-bit.
if ((grey)); then
    p16=gray16le y16=yuv444p16le p8=gray y8=gray
else
    p16=gbrp16le y16=yuv444p16le p8=gbrp y8=yuv444p
fi

# ---- the rows -------------------------------------------------------------------------------
if selected degraded "(no filter)"; then
    mkdir -p "$work/00-degraded"
    score degraded "(no filter): SET/degraded itself" "$(probe "$degraded/$first_name" pix_fmt)" "$degraded" 0.0 \
        "$work/00-degraded"
fi
run roundtrip "no filter, through $y16" "$y16" ""
run roundtrip "no filter, through $y8 (8-bit)" "$y8" ""

run hqdn3d "luma_spatial=4 (default)" "$y16" "hqdn3d=4"
sweep && run hqdn3d "luma_spatial=2" "$y16" "hqdn3d=2"
sweep && run hqdn3d "luma_spatial=6" "$y16" "hqdn3d=6"
sweep && run hqdn3d "luma_spatial=8" "$y16" "hqdn3d=8"

run nlmeans "s=1 p=7 r=15 (default)" "$y8" "nlmeans=s=1"
sweep && run nlmeans "s=2 p=7 r=15" "$y8" "nlmeans=s=2"
sweep && run nlmeans "s=3 p=7 r=15" "$y8" "nlmeans=s=3"
sweep && run nlmeans "s=4 p=7 r=15" "$y8" "nlmeans=s=4"

run bm3d "sigma=4" "$p16" "bm3d=sigma=4"
sweep && run bm3d "sigma=8" "$p16" "bm3d=sigma=8"
sweep && run bm3d "sigma=16" "$p16" "bm3d=sigma=16"
sweep && run bm3d "sigma=32" "$p16" "bm3d=sigma=32"
sweep && run bm3d "sigma=48" "$p16" "bm3d=sigma=48"
sweep && run bm3d "sigma=64" "$p16" "bm3d=sigma=64"

run fftdnoiz "sigma=4" "$p16" "fftdnoiz=sigma=4"
sweep && run fftdnoiz "sigma=8 prev=1 next=1" "$p16" "fftdnoiz=sigma=8:prev=1:next=1"
sweep && run fftdnoiz "sigma=16 prev=1 next=1" "$p16" "fftdnoiz=sigma=16:prev=1:next=1"
sweep && run fftdnoiz "sigma=24 prev=1 next=1" "$p16" "fftdnoiz=sigma=24:prev=1:next=1"
sweep && run fftdnoiz "sigma=32 prev=1 next=1" "$p16" "fftdnoiz=sigma=32:prev=1:next=1"

run atadenoise "s=9 (default)" "$p16" "atadenoise"
sweep && run atadenoise "s=15" "$p16" "atadenoise=s=15"

# tmedian outputs frame t + radius as frame t and drops the last 2 * radius: the first and last
# frames are repeated (tpad) so that the output lines up with the input, frame for frame.
tmedian() { echo "tpad=start=$1:stop=$1:start_mode=clone:stop_mode=clone,tmedian=radius=$1"; }
run tmedian "radius=1 (ends repeated)" "$p16" "$(tmedian 1)"
sweep && run tmedian "radius=2 (ends repeated)" "$p16" "$(tmedian 2)"

run removegrain "mode 4 (3x3 median)" "$p8" "removegrain=m0=4:m1=4:m2=4:m3=4"
sweep && run removegrain "mode 17" "$p8" "removegrain=m0=17:m1=17:m2=17:m3=17"

run deflicker "size=5 mode=am (default)" "$y16" "deflicker=size=5:mode=am"
sweep && run deflicker "size=15 mode=am" "$y16" "deflicker=size=15:mode=am"

run vidstab "smoothing=10 optzoom=0" "$y8" "vidstab:shakiness=5:accuracy=15|smoothing=10:optzoom=0:interpol=bicubic"
sweep && run vidstab "smoothing=30 optzoom=0" "$y8" "vidstab:shakiness=5:accuracy=15|smoothing=30:optzoom=0:interpol=bicubic"

run deshake "rx=ry=16 edge=mirror (default)" "$y8" "deshake"

# normalize works on RGB only.
run normalize "smoothing=24 independence=0" gbrp16le "normalize=smoothing=24:independence=0"
sweep && run normalize "smoothing=48 strength=0.5" gbrp16le "normalize=smoothing=48:independence=0:strength=0.5"
# Independent channels: the nearest FFmpeg gets to per-channel fade correction (colour stage).
run normalize "smoothing=24 independence=1" gbrp16le "normalize=smoothing=24:independence=1"
sweep && run normalize "smoothing=48 independence=1" gbrp16le "normalize=smoothing=48:independence=1"

# Scratches. Blind: a horizontal median across the whole frame (7 wide: covers scratches up to
# 3 px). Oracle rows know where the scratches are (a detector can do no better): the same median
# merged only inside SET/mask/ (dilated by a pixel), and delogo over each scratch track's box
# (columns it wanders over, rows it spans, frames it lives) from SET/truth.json.
run median "radius=3 radiusV=0 (horizontal, blind)" "$p16" "median=radius=3:radiusV=0"
if [[ -n $mask ]]; then
    run median "radius=3 radiusV=0 inside SET/mask only (oracle)" "$p16" \
        "complex:[0:v]format=WF,split[a][b];[b]median=radius=3:radiusV=0[m];[1:v]format=gray,dilation,format=WF[k];[a][m][k]maskedmerge,format=OUT"
fi
if [[ -f $set_dir/truth.json ]] && command -v jq >/dev/null; then
    # One delogo per track, enabled over its frames; the box is kept 1 px inside the frame.
    delogo=$(jq -r --argjson W "$width" --argjson H "$height" '
        [.frames[] as $f | $f.scratches[]? | {t: .track, n: $f.index, c: .column, w: .width, r: .rows}]
        | group_by(.t) | map(
            ([.[].c] | min) as $lo | ([.[].c] | max) as $hi | (.[0].w) as $wd
            | ([([.[].r[0]] | min | floor), 1] | max) as $y0
            | ([([.[].r[1]] | max | ceil), $H - 2] | min) as $y1
            | ([(($lo - $wd - 1) | floor), 1] | max) as $x0
            | ([(($hi + $wd + 1) | ceil), $W - 2] | min) as $x1
            | "delogo=x=\($x0):y=\($y0):w=\($x1 - $x0 + 1):h=\($y1 - $y0 + 1):enable='"'"'between(n,\([.[].n] | min),\([.[].n] | max))'"'"'")
        | join(",")' "$set_dir/truth.json")
    [[ -n $delogo ]] && run delogo "boxes of the truth.json scratch tracks (oracle)" "$y16" "$delogo"
fi

run chain "deshake, deflicker 5, tmedian 1, hqdn3d 4, normalize 24 indep. (ends repeated)" "$y8" \
    "deshake,format=$p16,deflicker=size=5:mode=am,$(tmedian 1),hqdn3d=4,format=gbrp16le,normalize=smoothing=24:independence=1"
sweep && run chain "deflicker 5, tmedian 1, hqdn3d 4 (no deshake, no normalize; ends repeated)" "$p16" \
    "deflicker=size=5:mode=am,$(tmedian 1),hqdn3d=4"

run upscale "clean/ area 1/2, lanczos 2x" "$p16" \
    "scale=trunc(iw/2):trunc(ih/2):flags=area+accurate_rnd,scale=$width:$height:flags=lanczos+accurate_rnd" "$clean"
sweep && run upscale "clean/ area 1/2, bicubic 2x" "$p16" \
    "scale=trunc(iw/2):trunc(ih/2):flags=area+accurate_rnd,scale=$width:$height:flags=bicubic+accurate_rnd" "$clean"

echo
fmt_row filter settings fmt "PSNR dB" SSIM "in mask" "outside" "shake" flicker "seconds"
printf '%s\n' "${results[@]}"
[[ -n $mask ]] || echo "(no SET/mask/: the mask columns are empty)"
[[ $NO_COMPARE != 1 ]] || echo "(NO_COMPARE=1: filters run and their frame counts checked, nothing scored)"
