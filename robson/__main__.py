from robson.cli.app import main

main()
