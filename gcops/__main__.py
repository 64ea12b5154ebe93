from gcops.cli import main

main()
