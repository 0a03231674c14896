from mp3svc_client.cli import main

raise SystemExit(main())
