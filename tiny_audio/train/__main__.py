from tiny_audio.train.main import train_command

train_command()
