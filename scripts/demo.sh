#!/usr/bin/env bash
# The main job, end to end, on this machine:
#   1. installs what it needs (Debian/Ubuntu packages) and builds mpegcoder in release mode;
#   2. makes a 10 s 720p sample clip with AAC audio with ffmpeg (or uses INPUT);
#   3. starts a real local server: GStreamer's RTSP server in RECORD mode (PROTOCOL=rtsp, the
#      default, with a PLAY relay mount) or nginx with the RTMP module (PROTOCOL=rtmp);
#   4. pushes the video at real time with libx264 and its audio untouched (`mpegcoder push`)
#      while `mpegcoder pull` reads the stream back from the server;
#   5. checks what arrived: the server's recording has every frame and decodes close to the
#      source (PSNR, by the ffmpeg CLI), every audio packet equal to the source's, with the
#      source's offset between audio and video; every frame pulled back equals the recorded
#      one (per-frame MD5) and the audio pulled back is a run of the source's packets; then
#      prints a summary.
#
# Usage: bash scripts/demo.sh [INPUT]        (PROTOCOL=rtmp bash scripts/demo.sh for RTMP)
set -euo pipefail
cd "$(dirname "$0")/.."

INPUT="${1:-}"
PROTOCOL="${PROTOCOL:-rtsp}"
case "$PROTOCOL" in rtsp|rtmp) ;; *) echo "error: PROTOCOL must be rtsp or rtmp" >&2; exit 2;; esac
command -v cargo >/dev/null || { echo "error: cargo not found; install Rust (https://rustup.rs) first" >&2; exit 1; }

bash .ci/install-deps
echo "== building (release)"
cargo build --release --locked -p mpegcoder-cli
BIN="$PWD/target/release/mpegcoder"
WORK="$PWD/target/demo"
rm -rf "$WORK"
mkdir -p "$WORK"
chmod 777 "$WORK"

if [ -z "$INPUT" ]; then
  INPUT="$WORK/sample.mp4"
  echo "== making a 10 s 1280x720 30 fps sample clip with 48 kHz stereo AAC: $INPUT"
  ffmpeg -v error -nostdin -y -f lavfi -i testsrc2=size=1280x720:rate=30 \
    -f lavfi -i "aevalsrc=0.4*sin(2*PI*440*t)|0.4*sin(2*PI*660*t):s=48000" -t 10 \
    -c:v libx264 -preset veryfast -pix_fmt yuv420p -bf 2 -g 60 -b:v 3M \
    -c:a aac -b:a 128k "$INPUT"
fi
[ -f "$INPUT" ] || { echo "error: $INPUT: no such file" >&2; exit 1; }

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
wait_listen() {
  for _ in $(seq 1 100); do
    if ss -ltn "sport = :$1" 2>/dev/null | grep -q LISTEN; then return 0; fi
    sleep 0.1
  done
  echo "error: the server did not listen on port $1" >&2
  exit 1
}

PORT=$(free_port)
if [ "$PROTOCOL" = rtsp ]; then
  RECORDING="$WORK/recorded.mkv"
  /usr/bin/python3 tests/servers/gst_rtsp_record.py --port "$PORT" --out "$RECORDING" \
    --audio --relay-mount /play >"$WORK/server.out" 2>"$WORK/server.log" &
  PIDS+=($!)
  PUSH_URL="rtsp://127.0.0.1:$PORT/record"
  PULL_URL="rtsp://127.0.0.1:$PORT/play"
  SERVER="GStreamer $(gst-launch-1.0 --version | sed -n 's/.*version //p' | head -1) RTSP server (RECORD)"
else
  mkdir -p "$WORK/nginx/rec"; chmod 777 "$WORK/nginx" "$WORK/nginx/rec"
  cat >"$WORK/nginx/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log info;
events { worker_connections 256; }
rtmp { server { listen 127.0.0.1:$PORT; chunk_size 4096;
  application live { live on; record all; record_path $WORK/nginx/rec; record_unique off; } } }
EOF
  nginx -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" &
  PIDS+=($!)
  RECORDING="$WORK/nginx/rec/demo.flv"
  PUSH_URL="rtmp://127.0.0.1:$PORT/live/demo"
  PULL_URL="$PUSH_URL"
  SERVER="nginx $(nginx -v 2>&1 | sed 's/.*\///') with the RTMP module"
fi
wait_listen "$PORT"

DURATION=$(ffprobe -v error -select_streams v:0 -show_entries format=duration -of csv=p=0 "$INPUT")
echo "== pushing $INPUT to $PUSH_URL at real time (libx264, audio copied), pulling back from $PULL_URL"
"$BIN" push "$INPUT" "$PUSH_URL" --stats-json "$WORK/push.json" &
PUSH_PID=$!
# The reader joins once the stream flows and reads until shortly before the push ends (the
# GStreamer relay never signals the end of a stream; nginx does).
sleep 1
PULL_FOR=$(awk -v d="$DURATION" 'BEGIN { v = d - 2; if (v < 1) v = 1; printf "%.1f", v }')
set +e
"$BIN" pull "$PULL_URL" --duration "$PULL_FOR" --timeout 5 --framemd5 "$WORK/pulled.md5" \
  --audio-out "$WORK/pulled.aac" --stats-json "$WORK/pull.json" 2>"$WORK/pull.log"
PULL_STATUS=$?
wait "$PUSH_PID"
PUSH_STATUS=$?
set -e
[ "$PUSH_STATUS" -eq 0 ] || { echo "error: the push failed (exit $PUSH_STATUS)" >&2; exit 1; }

# Let the server finish the recording (GStreamer logs when its muxer has finalised the file).
for _ in $(seq 1 50); do
  if [ "$PROTOCOL" = rtsp ]; then
    grep -q "recording finalised" "$WORK/server.out" "$WORK/server.log" 2>/dev/null && break
    sleep 0.2
    continue
  fi
  s1=$(stat -c %s "$RECORDING" 2>/dev/null || echo 0); sleep 0.2
  s2=$(stat -c %s "$RECORDING" 2>/dev/null || echo 0)
  [ "$s1" -gt 0 ] && [ "$s1" -eq "$s2" ] && break
done

echo "== checking what arrived"
md5s() { ffmpeg -v error -nostdin -i "$1" -map 0:v:0 -fps_mode passthrough -f framemd5 - | grep -v '^#' | awk -F', *' '{print $6}'; }
md5s "$INPUT" >"$WORK/source.md5"
md5s "$RECORDING" >"$WORK/recorded.md5"
SRC_FRAMES=$(wc -l <"$WORK/source.md5")
REC_FRAMES=$(wc -l <"$WORK/recorded.md5")
PSNR=$(ffmpeg -v info -nostdin -i "$RECORDING" -i "$INPUT" -lavfi \
  "[0:v]settb=1/25,setpts=N[a];[1:v]settb=1/25,setpts=N[b];[a][b]psnr" -fps_mode passthrough -f null - 2>&1 \
  | sed -n 's/.*PSNR.*average:\([0-9.inf]*\).*/\1/p' | tail -1)
# Pulled frames must be a contiguous run of the recorded frames (the reader joined late).
awk '{print $2}' "$WORK/pulled.md5" >"$WORK/pulled.hashes" 2>/dev/null || true
PULLED=$(wc -l <"$WORK/pulled.hashes")
MATCHED=$(awk 'NR==FNR { rec[++n]=$1; next }
  FNR==1 { for (i=1;i<=n;i++) if (rec[i]==$1) { start=i; break } ; if (!start) exit }
  { if (rec[start+FNR-1]==$1) ok++ } END { print ok+0 }' "$WORK/recorded.md5" "$WORK/pulled.hashes")

# Audio: the recording's packets against the source's; the pulled ones a run of them.
amd5s() { ffmpeg -v error -nostdin -i "$1" -map 0:a:0 -c copy "${@:2}" -f framemd5 - 2>/dev/null | grep -v '^#' | awk -F', *' '{print $6}'; }
first_pts() { ffprobe -v error -select_streams "$2" -show_entries packet=pts_time -of default=nw=1:nk=1 "$1" \
  | grep -E '^-?[0-9.]+$' | head -16 | sort -g | head -1; }
HAS_AUDIO=$(ffprobe -v error -select_streams a:0 -show_entries stream=codec_name -of csv=p=0 "$INPUT" | head -1)
if [ "$HAS_AUDIO" = aac ]; then
  amd5s "$INPUT" >"$WORK/source.audio.md5"
  amd5s "$RECORDING" >"$WORK/recorded.audio.md5"
  amd5s "$WORK/pulled.aac" -bsf:a aac_adtstoasc >"$WORK/pulled.audio.md5" || true
  SRC_AUDIO=$(wc -l <"$WORK/source.audio.md5")
  REC_AUDIO=$(wc -l <"$WORK/recorded.audio.md5")
  AUDIO_SAME=$(cmp -s "$WORK/source.audio.md5" "$WORK/recorded.audio.md5" && echo yes || echo no)
  PULLED_AUDIO=$(wc -l <"$WORK/pulled.audio.md5")
  AUDIO_MATCHED=$(awk 'NR==FNR { src[++n]=$1; next }
    FNR==1 { for (i=1;i<=n;i++) if (src[i]==$1) { start=i; break } ; if (!start) exit }
    { if (src[start+FNR-1]==$1) ok++ } END { print ok+0 }' "$WORK/source.audio.md5" "$WORK/pulled.audio.md5")
  SRC_OFFSET=$(awk -v a="$(first_pts "$INPUT" a:0)" -v v="$(first_pts "$INPUT" v:0)" 'BEGIN { printf "%.1f", (a - v) * 1000 }')
  REC_OFFSET=$(awk -v a="$(first_pts "$RECORDING" a:0)" -v v="$(first_pts "$RECORDING" v:0)" 'BEGIN { printf "%.1f", (a - v) * 1000 }')
fi

json() { sed -n "s/.*\"$2\": *\([^,]*\),*$/\1/p" "$1" | head -1; }
SENT=$(json "$WORK/push.json" frames_sent)
SENT_AUDIO=$(json "$WORK/push.json" audio_frames_sent)
ELAPSED=$(json "$WORK/push.json" elapsed_s)
LATE=$(json "$WORK/push.json" late_frames)

echo
echo "mpegcoder demo summary"
echo "  server:    $SERVER at $PUSH_URL"
echo "  input:     $INPUT ($SRC_FRAMES frames, ${DURATION} s)"
printf '  push:      %s frames sent in %.2f s (real time), %s late\n' "$SENT" "$ELAPSED" "$LATE"
echo "  recorded:  $REC_FRAMES of $SRC_FRAMES frames, PSNR ${PSNR} dB against the source"
echo "  pulled:    $PULLED frames read back, $MATCHED identical to the recorded frames (exit $PULL_STATUS)"
if [ "$HAS_AUDIO" = aac ]; then
  echo "  audio:     $SENT_AUDIO AAC frames sent; recorded $REC_AUDIO of $SRC_AUDIO, identical to the source: $AUDIO_SAME"
  echo "             start offset audio - video: recorded $REC_OFFSET ms, source $SRC_OFFSET ms"
  echo "             pulled back $PULLED_AUDIO frames, $AUDIO_MATCHED identical to a run of the source's"
else
  echo "  audio:     ${HAS_AUDIO:-none} in the input (only AAC is checked here)"
fi

FAIL=0
[ "$REC_FRAMES" -eq "$SRC_FRAMES" ] || { echo "FAILED: the server recorded $REC_FRAMES of $SRC_FRAMES frames"; FAIL=1; }
awk -v p="$PSNR" 'BEGIN { exit !(p == "inf" || p + 0 >= 30) }' || { echo "FAILED: PSNR $PSNR dB is below 30 dB"; FAIL=1; }
[ "$PULLED" -gt 0 ] && [ "$MATCHED" -eq "$PULLED" ] || { echo "FAILED: $MATCHED of $PULLED pulled frames match the recording"; FAIL=1; }
if [ "$HAS_AUDIO" = aac ]; then
  [ "$AUDIO_SAME" = yes ] || { echo "FAILED: the recorded audio differs from the source's ($REC_AUDIO of $SRC_AUDIO packets)"; FAIL=1; }
  awk -v r="$REC_OFFSET" -v s="$SRC_OFFSET" 'BEGIN { d = r - s; exit !(d <= 5 && d >= -5) }' \
    || { echo "FAILED: the recorded start offset is $REC_OFFSET ms, the source's $SRC_OFFSET ms"; FAIL=1; }
  [ "$PULLED_AUDIO" -gt 0 ] && [ "$AUDIO_MATCHED" -eq "$PULLED_AUDIO" ] \
    || { echo "FAILED: $AUDIO_MATCHED of $PULLED_AUDIO pulled audio frames match the source's"; FAIL=1; }
fi
[ "$FAIL" -eq 0 ] && echo "OK: every frame and audio packet arrived in sync, and what was pulled back matches"
exit "$FAIL"
