"""A price feed that sends a heartbeat with its last price to the engine every second.

Its symbol comes from the Truth component `feed` (truth/components/feed.json)."""
import json
import os
import random
import time
import urllib.request

URL = os.environ["SOVEREIGN_URL"] + "/api/heartbeats/" + os.environ["SOVEREIGN_SERVICE"]
SYMBOL = os.environ.get("FEED_SYMBOL", "ES")
price = 5000.0
while True:
    price += random.choice((-0.25, 0.25))
    body = json.dumps({"last_price": f"{price:.2f}", "symbol": SYMBOL}).encode()
    req = urllib.request.Request(URL, data=body, headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=2).read()
        print(f"feed: {SYMBOL} {price:.2f}", flush=True)
    except OSError as e:
        print(f"feed: heartbeat failed: {e}", flush=True)
    time.sleep(1)
