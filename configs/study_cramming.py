"""Study 3, *Cramming* (Geiping & Goldstein 2023) in miniature: the crammed BERT against the original BERT and
Table 5's three groups of changes, every one under the same wall-clock budget, and the budget-tied one-cycle
schedule against a constant and a cosine one.

    python -m scaling.study --config=configs/study_cramming.py --out=/tmp/study-cramming

Every run is a 4-layer, width-256 encoder (4 heads, FFN 1024) trained for the same 5 minutes on the embedded
corpus, three pretraining seeds, then finetuned on rotten_tomatoes with one global recipe; the same shape
finetuned without pretraining is the control (Table 3 has one). Table 5's three groups, as §4.2–4.4 file them:

- architecture (§4.2) — crammed: pre-norm, no biases, GLU FFN, scaled sinusoidal positions, final norm, sparse
  prediction (``crammed-bert`` with the knobs below); original: ``bert-mini``, i.e. post-norm BERT;
- training (§4.3, which lists the masking rate with the training setup) — crammed: 25% masking, AdamW at 1e-3
  (β2 0.98, ε 1e-12, clipping 0.5), the budget-tied one-cycle of the authors' code, batch 64 reached by a ramp,
  no dropout; original: 15% masking and the authors' "original train" ablation (scripts/final_story_cb_o4_a6000.sh
  line 31, train/bert-original.yaml, optimizer adam_classic.yaml): AdamW at 1e-4 (β2 0.999, ε 1e-8, no
  clipping), cosine to zero within the budget after 6% warmup, dropout 0.1, at a fixed batch of 16 (theirs is
  1/16 of the crammed batch; 1/4 here keeps 16 rows a step);
- data (§4.4) — crammed: the curated corpus as the authors' final runs make it (compression-filtered and sorted,
  without deduplication: final_story_cb_o4_a6000.sh line 15); original: the corpus as it is.

Tasks pair data with masking: ``sotu_cramming_mlm`` (curated, 25%), ``sotu_curated_mlm`` (curated, 15%),
``sotu_mlm_25`` (as is, 25%), ``sotu_mlm`` (as is, 15%). Runs: ``crammed``; one group reset to the original
(``original_arch``, ``original_train``, ``original_data``); ``original_bert`` (all three original); and the
crammed recipe with a constant or a cosine schedule. About three hours on 2 CPU cores; ``:smoke`` is CI's
one-minute form.
"""

from scaling.experiments import study

CRAMMED = "crammed-bert-nl4-dm256-ff1k-nh4"
ORIGINAL = "bert-mini"  # 4 layers, width 256, 4 heads, FFN 1024: the same knobs, BERT's switches
ORIGINAL_TRAIN = {
    "batch_size": 16,
    "micro_batch_size": None,
    "data": {"task": "sotu_curated_mlm"},  # BERT's 15% masking: part of the training group (§4.3)
    "model": {"dropout_rate": 0.1},
    "optimizer": {
        "learning_rate": 1e-4,
        "b2": 0.999,
        "eps": 1e-8,
        "grad_clip_norm": 0.0,
        "schedule": "cosine",
        "warmup_fraction": 0.06,
        "batch_ramp_fraction": 0.0,
    },
}


def get_config(variant: str = ""):
    if variant not in ("", "smoke"):
        raise ValueError(f"configs/study_cramming.py:{variant}: the only variant is 'smoke'")
    config = study.default_config()
    config.name = config.kind = "cramming"
    config.recipe = "configs/crammed_bert.py"
    config.budget = "seconds:300"
    config.seeds = "0,1,2"
    config.reference = "crammed"
    config.controls.no_pretraining = True
    config.common = {
        "model": {"name": CRAMMED, "vocab_size": None, "dropout_rate": 0.0},
        "data": {"task": "sotu_cramming_mlm", "inputs_length": 128, "eval_batches": 8},
        "batch_size": 64,
        "micro_batch_size": 16,
        "log_every_steps": 5,
        "eval_every_steps": 0,
        "checkpoint": {"save_interval_steps": 200},
    }
    runs = {
        "crammed": {},
        "original_arch": {"model": {"name": ORIGINAL}},
        "original_train": ORIGINAL_TRAIN,
        "original_data": {"data": {"task": "sotu_mlm_25"}},
        "original_bert": {
            **ORIGINAL_TRAIN,
            "data": {"task": "sotu_mlm"},
            "model": {"name": ORIGINAL, "dropout_rate": 0.1},
        },
        "schedule_constant": {"optimizer": {"schedule": "constant", "warmup_fraction": 0.1}},
        "schedule_cosine": {"optimizer": {"schedule": "cosine", "warmup_fraction": 0.1}},
    }
    config.runs, config.order = runs, ",".join(runs)  # a ConfigDict sorts its keys; order keeps ours
    config.finetune.recipe = "configs/finetune.py:demo"
    config.finetune.tasks = "rotten_tomatoes"
    config.finetune.overrides = {"max_train_examples": 3000, "epochs": 1}
    if variant == "smoke":
        config.baseline_train_rows = 256  # one read batch: smoke checks the table, not the baseline's precision
        config.runs = {name: runs[name] for name in ("crammed", "original_bert")}
        config.order = "crammed,original_bert"
        config.budget = "seconds:3"
        config.seeds = "0,1"
        config.common.model.name = "crammed-bert-nl2-dm64-ff256-nh1"
        config.runs.original_bert.model.name = "bert-tiny-dm64-ff256-nh1"
        config.common.data.eval_batches = 1
        config.common.log_every_steps = 2
        config.finetune.overrides = {"max_train_examples": 64, "max_eval_examples": 64, "epochs": 1}
    return config
