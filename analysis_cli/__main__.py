from analysis_cli import main

main()
