from e2r.cli import main

main()
