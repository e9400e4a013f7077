"""What mailguard knows of the school itself: who each address belongs to (the directory) and
when the school works (the working-hours calendar). Checks read both; neither reads mail."""
