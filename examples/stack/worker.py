"""A worker that needs the API and the feed: polls the API's quote every two seconds."""
import json
import os
import time
import urllib.request

API = os.environ.get("API_URL", "http://127.0.0.1:18081")
while True:
    with urllib.request.urlopen(API + "/quote", timeout=2) as r:
        quote = json.load(r)
    print(f"worker: processed quote {quote['symbol']} {quote['price']}", flush=True)
    time.sleep(2)
