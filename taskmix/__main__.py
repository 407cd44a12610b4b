from taskmix.cli import main

raise SystemExit(main())
