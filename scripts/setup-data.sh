#!/bin/sh
# Fashion-MNIST for the demo and the tests, from Debian's package (no internet needed beyond the package mirror).
# art_rslad.data unpacks it into its cache on first use; without it, torchvision's download is tried instead.
set -e
if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist && exit 0
fi
echo "Could not install the Debian package dataset-fashion-mnist; art-rslad will try torchvision's download." >&2
