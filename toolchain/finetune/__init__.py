"""Fine-tuning of the pruned model with knowledge distillation from the dense one (stage "finetune")."""
