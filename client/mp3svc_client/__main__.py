from mp3svc_client.signals import run

if __name__ == "__main__":
    raise SystemExit(run())
