from minicap.cli import main

raise SystemExit(main())
