"""Scale Efficiently, Table 4 row "Mini-8L": mini-nl8 on C4 span corruption with the paper's recipe."""

from scaling.experiments import recipes


def get_config():
    return recipes.scale_efficiently("mini-nl8")
