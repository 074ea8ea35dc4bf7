"""Training: teacher fine-tuning (finetune.py), task distillation (distill.py), general distillation
(general.py) and every loss term (losses.py), on the Hugging Face Trainer."""
