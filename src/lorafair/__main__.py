from lorafair.cli import main

raise SystemExit(main())
