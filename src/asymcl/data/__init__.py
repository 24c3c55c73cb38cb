"""Data: download, verify, subset/split, resize and pack Fashion-MNIST and ISIC 2018."""
