"""CIFAR-10 loading: decoding the JPEG archive vs reloading the npz cache.

``load_dataset("cifar10")`` streams ``cifar10-jpeg.tar.gz`` once, decodes the
JPEGs with Pillow and caches the uint8 arrays as ``.npz``; later calls read
the cache. This script times both paths side by side (interleaved rounds,
medians) and prints the ratio to the decode path. Also times Location.

Usage:
  python bench/data_loading.py            # all 60,000 images, 3 rounds
  python bench/data_loading.py --quick    # 20 images per class and split
"""

import argparse
import pathlib
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import _common  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small subset, 2 rounds")
    p.add_argument("--data-dir", default=None, help="folder with cifar10-jpeg.tar.gz")
    p.add_argument("--out", default=None, help="write results.json here")
    args = p.parse_args(argv)

    from keras_mi.data import load_dataset

    data_dir = args.data_dir or _common.default_data_dir()
    if data_dir is None or not (pathlib.Path(data_dir) / "cifar10-jpeg.tar.gz").exists():
        print("cifar10-jpeg.tar.gz not found; set KERAS_MI_DATA_DIR or --data-dir")
        return 0
    limit = 20 if args.quick else None
    repeats = 2 if args.quick else 3
    with tempfile.TemporaryDirectory() as scratch:
        warm_cache = pathlib.Path(scratch) / "warm"
        load_dataset("cifar10", data_dir, warm_cache, download=False, limit=limit)
        counter = iter(range(10**6))

        def decode():  # a fresh cache dir each call forces the JPEG decode
            cold = pathlib.Path(scratch) / f"cold{next(counter)}"
            load_dataset("cifar10", data_dir, cold, download=False, limit=limit)

        fns = {
            "cifar10_jpeg_decode": decode,
            "cifar10_npz_cache": lambda: load_dataset(
                "cifar10", data_dir, warm_cache, download=False, limit=limit),
            "location_parse": lambda: load_dataset("location", data_dir, warm_cache,
                                                   download=False),
        }
        times = _common.interleaved(fns, repeats=repeats, log=print)
    summary = _common.summarize(times, baseline="cifar10_jpeg_decode")
    rows = [[name, s["median_s"], s["ratio"]] for name, s in summary.items()]
    print(f"limit per class and split: {limit}")
    print(_common.markdown_table(["config", "median s", "ratio to decode"], rows))
    if args.out:
        _common.write_json_atomic(pathlib.Path(args.out) / "results.json",
                                  {"limit": limit, "summary": summary,
                                   "machine": _common.machine_info()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
