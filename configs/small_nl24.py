"""Scale Efficiently, Table 4 row "Small 24L": small-nl24 on C4 span corruption with the paper's recipe."""

from scaling.experiments import recipes


def get_config():
    return recipes.scale_efficiently("small-nl24")
