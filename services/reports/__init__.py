"""出動報告 and 出動報酬 (#22): reports, their approval chain, the reward table, the export."""
