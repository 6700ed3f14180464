from mangahub.cli.main import app

app()
