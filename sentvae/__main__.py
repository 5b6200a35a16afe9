from sentvae.cli import main

main()
