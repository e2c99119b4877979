#!/usr/bin/env bash
# One line naming this machine for logs and bug reports (CI prints it first): CPU model, family/model, ISA flags that
# decide TensorFlow's kernels (AVX2, AVX-512, BF16, AMX), cores, memory and load. No Python needed (CI calls it before
# set-up); `dcgan env` says the same plus whether TensorFlow runs oneDNN.
set -euo pipefail
field() { grep -m1 "^$1[[:space:]]*:" /proc/cpuinfo 2>/dev/null | cut -d: -f2- | xargs || true; }
flags=" $(field flags) "
isa=SSE
case "$flags" in *" avx512f "*) isa=AVX-512 ;; *" avx2 "*) isa=AVX2 ;; esac
present=()
for f in avx2 fma avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16; do
  case "$flags" in *" $f "*) present+=("${f^^}") ;; esac
done
mem=$(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo 2>/dev/null || echo "? GiB")
echo "$(field 'model name') (family $(field 'cpu family') model $(field model)), $isa (${present[*]:-none}), $(nproc) cores, $mem, load $(cut -d' ' -f1-3 /proc/loadavg)"
