from serving.client.cli import main

main()
