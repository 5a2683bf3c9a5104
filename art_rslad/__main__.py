from art_rslad.cli import main

raise SystemExit(main())
