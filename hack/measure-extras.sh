#!/usr/bin/env bash
# Install size and time of each extra: a clean venv per extra, a non-editable install of this
# checkout, wall time of `pip install`, size of the venv's site-packages and its distribution
# count. Prints one Markdown table row per extra (docs/benchmarks.md, "Install size").
#
#   bash hack/measure-extras.sh [EXTRA ...]     # default: base operator server bench engine dev
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-$(mktemp -d)}
extras=("$@")
[[ ${#extras[@]} -gt 0 ]] || extras=(base operator server bench engine dev)
echo "| extra | pip install wall s | site-packages MiB | distributions |"
echo "|---|---|---|---|"
for extra in "${extras[@]}"; do
  env_dir="$WORK/$extra"
  rm -rf "$env_dir"
  python3 -m venv "$env_dir"
  target=".[$extra]"
  [[ $extra == base ]] && target="."
  start=$(date +%s.%N)
  env -u PYTHONPATH "$env_dir/bin/pip" install --quiet "$target"
  end=$(date +%s.%N)
  site=$("$env_dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  mib=$(du -sm "$site" | cut -f1)
  dists=$("$env_dir/bin/python" -c 'import importlib.metadata as m; print(len(list(m.distributions())))')
  printf '| `%s` | %.0f | %s | %s |\n' "$target" "$(echo "$end - $start" | bc)" "$mib" "$dists"
  rm -rf "$env_dir"
done
