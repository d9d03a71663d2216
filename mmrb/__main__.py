from mmrb.cli import main

main()
