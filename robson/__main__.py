from robson.cli.entry import main

main()
