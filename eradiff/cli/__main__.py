from eradiff.cli import main

main()
