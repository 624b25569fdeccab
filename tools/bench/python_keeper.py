"""A listen-key keeper written the way a python-binance user writes one.

It is the baseline of `cargo run --release --bin bench`: one
`binance.client.Client`, `isolated_margin_stream_get_listen_key(symbol)` for
every symbol, then a loop that calls `isolated_margin_stream_keepalive` for
each symbol every 30 minutes, writing the keys to a JSON file (temporary file
and rename, so a reader never sees half a file).

Two things differ from production use, both only to point it at the simulator:
`ping=False` (the constructor otherwise pings api.binance.com) and
`client.MARGIN_API_URL`, which python-binance builds from `tld` and
`base_endpoint` as https://api.binance.com/sapi.
"""

import argparse
import json
import os
import time
import warnings

from binance.client import Client


def write(path, keys):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"streams": keys}, f)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sim", required=True, help="simulator base URL, e.g. http://127.0.0.1:9000")
    ap.add_argument("--symbols", required=True, help="comma-separated isolated-margin symbols")
    ap.add_argument("--out", required=True, help="the JSON file to write")
    ap.add_argument("--interval", type=float, default=30 * 60, help="keepalive interval, seconds")
    args = ap.parse_args()
    # The listen-key calls warn that Binance retired them; the user would see that once.
    warnings.simplefilter("ignore", DeprecationWarning)

    client = Client("benchkey", "benchsecret", ping=False)
    client.MARGIN_API_URL = args.sim.rstrip("/") + "/sapi"

    symbols = args.symbols.split(",")
    keys = {}
    for symbol in symbols:
        keys[symbol] = client.isolated_margin_stream_get_listen_key(symbol)
    write(args.out, keys)

    while True:
        time.sleep(args.interval)
        for symbol in symbols:
            try:
                client.isolated_margin_stream_keepalive(symbol, keys[symbol])
            except Exception:
                keys[symbol] = client.isolated_margin_stream_get_listen_key(symbol)
        write(args.out, keys)


if __name__ == "__main__":
    main()
