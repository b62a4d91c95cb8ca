from difflab.cli.main import main

raise SystemExit(main())
