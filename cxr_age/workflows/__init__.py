"""What a user runs, over `Run` objects: training, evaluation, external validation, prediction of folders of
studies, the age-gap analysis and the report page."""
