from metaexercise.cli import main

raise SystemExit(main())
