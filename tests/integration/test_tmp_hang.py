import time
def test_hang(bsky_network):
    time.sleep(600)
