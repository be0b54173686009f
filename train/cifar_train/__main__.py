from cifar_train.cli import app

app(prog_name="cifar-train")
