from metaexercise.commands.cli import main

raise SystemExit(main())
