"""What each `scalinglab` verb does; cli.py parses the command line and calls one of these."""
