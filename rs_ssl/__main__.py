from rs_ssl.cli import main

raise SystemExit(main())
