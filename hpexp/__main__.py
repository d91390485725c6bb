from hpexp.cli import main

raise SystemExit(main())
