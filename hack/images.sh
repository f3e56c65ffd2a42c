#!/usr/bin/env bash
# Build the two images (operator, engine) with the first container builder found.
#
# Why a script: the tags must match the defaults users get (the chart's operator.image and the
# CRD's spec.engine.image), and a machine without a builder should say so and what to push,
# not fail with "docker: command not found".
#
#   bash hack/images.sh                    build both images
#   SLOSERVE_BUILDER=podman bash hack/...  pick a builder (docker, podman or buildah)
#   SLOSERVE_IMAGE_PREFIX=reg:5000/ ...    prefix both tags with a registry
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p' pyproject.toml | head -1)
PREFIX=${SLOSERVE_IMAGE_PREFIX:-}
OPERATOR_IMAGE=${PREFIX}sloserve/operator:$VERSION
ENGINE_IMAGE=${PREFIX}sloserve/engine:$VERSION

# Usable = on PATH and answering `info` (a docker CLI without a daemon is not a builder).
usable() { command -v "$1" >/dev/null 2>&1 && "$1" info >/dev/null 2>&1; }
candidates=(${SLOSERVE_BUILDER:-docker podman buildah})
builder=
for b in "${candidates[@]}"; do
  if usable "$b"; then builder=$b; break; fi
done

if [[ -z $builder ]]; then
  cat >&2 <<MSG
images: no container builder found (tried ${candidates[*]}: none on PATH with a working \`info\`).
images: nothing was built. On a machine with one, from the repository root:
  docker build -f operator/Dockerfile -t $OPERATOR_IMAGE .
  docker build -f engine/Dockerfile -t $ENGINE_IMAGE .
images: then push both to the registry your cluster pulls from:
  docker push $OPERATOR_IMAGE     # the chart's operator.image.repository/tag
  docker push $ENGINE_IMAGE       # the LLMService spec.engine.image default
MSG
  exit 3
fi

build=(build)
[[ $builder == buildah ]] && build=(bud)
"$builder" "${build[@]}" -f operator/Dockerfile -t "$OPERATOR_IMAGE" .
"$builder" "${build[@]}" -f engine/Dockerfile -t "$ENGINE_IMAGE" .
cat <<MSG
images: built $OPERATOR_IMAGE and $ENGINE_IMAGE with $builder. Push both:
  $builder push $OPERATOR_IMAGE
  $builder push $ENGINE_IMAGE
MSG
