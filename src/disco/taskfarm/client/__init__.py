"""`disco farm client`: the volunteer's side of the task farm (docs/taskfarm.md, "Volunteering")."""
