from illada_eval.cli import main

raise SystemExit(main())
