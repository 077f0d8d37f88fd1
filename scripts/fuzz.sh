#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer through the libfuzzer-sys crate, on the
# machine's stable Rust: SanitizerCoverage flags, no cargo-fuzz, no nightly)
# of every decoder of outside bytes: fuzz/fuzz_targets/*.rs.
#
#   scripts/fuzz.sh [--time SECONDS] [--smoke] [TARGET ...]
#
# Each target starts from its checked-in seeds (fuzz/seeds/<target>, kept
# valid by tests/fuzz_seeds.rs) and every crash ever found
# (fuzz/regressions/<target>), and grows its corpus in
# target/fuzz/corpus/<target> (kept between runs, not in git). A crash, a
# timeout (10 s), an allocation over 256 MiB or 2 GiB live (fuzz/src/lib.rs)
# or an RSS over 2 GiB stops the run: the input is in
# target/fuzz/artifacts/<target>/; fix it, then copy it to
# fuzz/regressions/<target>/. --smoke (the test command's run): 10 s a
# target, built unoptimised (fuzz/Cargo.toml's `smoke` profile: a third of the
# build time, far fewer inputs a second). Inputs run are added to target/fuzz/ledger.tsv (date, target,
# seconds, inputs) and summed at the end.
#
# The JS record decoder of the npm package is fuzzed by mutation in Node
# (web/test/record.test.mjs; RLRAG_RECORD_FUZZ_INPUTS sets how many).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=300
profile=release
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --time) seconds="$2"; shift 2 ;;
    --smoke) seconds=10; profile=smoke; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
only=("${targets[@]+"${targets[@]}"}")
if [ ${#targets[@]} -eq 0 ]; then
  targets=($(ls fuzz/fuzz_targets | sed 's/\.rs$//'))
else
  # js_record is the Node run below, not a libFuzzer target.
  kept=()
  for t in "${targets[@]}"; do [ "$t" = js_record ] || kept+=("$t"); done
  targets=("${kept[@]+"${kept[@]}"}")
fi
host=$(rustc -vV | sed -n 's/^host: //p')
# The flags cargo-fuzz passes, minus the sanitizer (-Z, nightly only): edge
# coverage with 8-bit counters, the PC table and comparison tracing.
# --target keeps them off build scripts and proc macros.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cforce-frame-pointers"
export CARGO_TARGET_DIR="$PWD/target/fuzz/build"
export CARGO_INCREMENTAL=0
echo "== building the fuzz targets (fuzz/, $host)"
(cd fuzz && cargo build --locked --profile "$profile" --target "$host" --bins)
bin="$CARGO_TARGET_DIR/$host/$profile"
mkdir -p target/fuzz
ledger=target/fuzz/ledger.tsv
status=0
for t in "${targets[@]+"${targets[@]}"}"; do
  corpus=target/fuzz/corpus/$t
  artifacts=target/fuzz/artifacts/$t
  mkdir -p "$corpus" "$artifacts" "fuzz/regressions/$t"
  log=target/fuzz/$t.log
  echo "== fuzz $t for ${seconds} s"
  set +e
  # Postcard payloads (indexes, engines): a dictionary of large varints.
  dict=()
  case "$t" in index_file|engine_import) dict=(-dict=fuzz/dict/postcard.dict) ;; esac
  "$bin/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -use_value_profile=1 \
    "${dict[@]+"${dict[@]}"}" -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$corpus" "fuzz/seeds/$t" "fuzz/regressions/$t" >"$log" 2>&1
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  printf '%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$seconds" "${runs:-0}" >>"$ledger"
  if [ $rc -ne 0 ]; then
    status=1
    echo "!! $t failed (exit $rc): see $log; the input is in $artifacts/" >&2
    grep -E "panicked|ERROR|SUMMARY|==rlrag-fuzz==|Test unit written" "$log" | head -8 >&2 || true
  else
    echo "   ${runs:-0} inputs, no crash"
  fi
done
# The npm package's record decoder: seeded mutations in Node (not
# coverage-guided: 20 lines, every branch reached; see the test).
if [ "$seconds" -gt 10 ] && { [ "${#only[@]}" -eq 0 ] || printf '%s\n' "${only[@]}" | grep -qx js_record; }; then
  n=$((seconds * 20000))
  echo "== fuzz js_record: $n mutated records (web/test/record.test.mjs)"
  if RLRAG_RECORD_FUZZ_INPUTS=$n node --test web/test/record.test.mjs >target/fuzz/js_record.log 2>&1; then
    printf '%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" js_record "$seconds" "$n" >>"$ledger"
    echo "   $n inputs, no failure"
  else
    status=1
    echo "!! js_record failed: see target/fuzz/js_record.log" >&2
  fi
fi
echo "== inputs run per target, all runs in $ledger"
awk -F'\t' '{n[$2]+=$4} END {for (t in n) printf "   %-16s %d\n", t, n[t]}' "$ledger" | sort
exit $status
