"""Scale Efficiently, Table 4 row "Base 36L": base-nl36 on C4 span corruption with the paper's recipe."""

from scaling.experiments import recipes


def get_config():
    return recipes.scale_efficiently("base-nl36")
