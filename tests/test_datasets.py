"""The dataset adapters on real rows (CheXpert, RSNA pneumonia and Open-i excerpts, NIH 2017) and on tables
written in the published layouts of MIMIC-CXR, PadChest and the COVID-19 collection (tests/fixtures/)."""

import json

import pandas as pd
import pytest
from helpers import FIXTURES, NIH_2017_ROWS, assert_one_line_error, call_cli

from cxr_age.cli import data
from cxr_age.config import DataConfig
from cxr_age.errors import CxrAgeError
from cxr_age.io import datasets
from cxr_age.io.metadata import read_table
from cxr_age.io.selection import select
from cxr_age.io.splits import assign_splits

TABLES = FIXTURES / "datasets"
CHEXPERT = TABLES / "chexpert_train_rows.csv"
RSNA = TABLES / "rsna_pneumonia_dicom_headers_rows.csv"
OPENI = TABLES / "nlm_openi_dicom_metadata_rows.csv"
MIMIC = TABLES / "mimic" / "mimic-cxr-2.0.0-metadata.csv"
PADCHEST = TABLES / "padchest" / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv"
COVID = TABLES / "covid" / "metadata.csv"


def _by_image(path, **kwargs):
    return read_table(path, **kwargs).frame.set_index("image")


@pytest.mark.parametrize("path, name", [(NIH_2017_ROWS, "nih"), (CHEXPERT, "chexpert"), (MIMIC, "mimic"),
                                        (PADCHEST, "padchest"), (COVID, "covid"), (RSNA, "dicom-headers"),
                                        (OPENI, "dicom-headers"), (FIXTURES / "nih-full" / "labels.csv", "csv")])
def test_each_layout_is_detected_from_its_columns(path, name):
    table = read_table(path)
    assert table.dataset == name and table.detected
    assert set(table.frame["dataset"]) == {name}
    assert set(table.frame["sex"]) <= {"M", "F", ""}


def test_chexpert_patients_views_ages_and_findings():
    frame = _by_image(CHEXPERT)
    # every image of one patient folder shares its id, and ids come from nowhere else
    folders = frame.index.str.split("/").str[2]
    assert (frame["patient_id"] == folders).all()
    assert frame["patient_id"].nunique() == 89
    lateral = frame.index.str.contains("_lateral")
    assert (frame.loc[lateral, "excluded"].isin(["lateral_view", "age_censored", "age_missing"])).all()
    assert (frame.loc[lateral & (frame["excluded"] == "lateral_view"), "view"] == "LATERAL").all()
    assert set(frame.loc[frame["age"] == 90, "excluded"]) == {"age_censored"}  # 90 means 90 or older
    assert set(frame.loc[frame["age"] == 0, "excluded"]) == {"age_missing"}  # adults with no age recorded
    assert int((frame["age"] == 0).sum()) == 3
    assert set(frame.loc[frame["view"].isin(["LL", "RL"]), "excluded"]) == {"not_frontal"}  # frontal decubitus
    # patient06113: Pleural Effusion -1.0 (uncertain: not a finding), Support Devices 1.0, others 0.0 or blank
    assert frame.loc["CheXpert-v1.0-small/train/patient06113/study1/view1_frontal.jpg", "findings"] == (
        "Support Devices")
    # patient06600/study6: Lung Opacity 1.0, Edema 1.0, Atelectasis -1.0
    assert frame.loc["CheXpert-v1.0-small/train/patient06600/study6/view1_frontal.jpg", "findings"] == (
        "Lung Opacity|Edema")


def test_chexpert_split_keeps_every_patient_in_one_split():
    selection = select(DataConfig(csv=str(CHEXPERT), image_dir=str(TABLES)))
    frame = assign_splits(selection.frame, seed=0)
    assert frame.groupby("patient_id")["split"].nunique().max() == 1
    assert selection.counts["patients_selected"] < selection.counts["selected"]  # patients have several images
    assert set(frame["split"]) == {"train", "val", "test"}


def test_mimic_ages_from_anchor_years_and_paths_from_ids():
    frame = _by_image(MIMIC)
    first = "files/p10/p10000032/s50414267/030142bb-00000000-0000.jpg"
    assert frame.loc[first, ["patient_id", "age", "sex", "view", "findings"]].tolist() == [
        "10000032", 52.0, "F", "PA", "No Finding"]
    # three years after the anchor year; Cardiomegaly was -1 (uncertain), so only Edema is a finding
    later = frame.loc["files/p10/p10000032/s53189527/032b9b97-00000000-0000.jpg"]
    assert (later["age"], later["findings"]) == (55.0, "Edema")
    reasons = frame.groupby("patient_id")["excluded"].agg(set)
    assert reasons["10000898"] == {"age_censored"}  # anchor_age 91: over 89
    assert reasons["10009999"] == {"no_patient_record"}
    assert frame.loc[frame["view"] == "AP AXIAL", "excluded"].tolist() == ["not_frontal"]
    assert frame.loc[frame["view"] == "", "excluded"].tolist() == ["view_not_recorded"]


def test_mimic_needs_the_patients_table(tmp_path):
    table = tmp_path / "mimic-cxr-2.0.0-metadata.csv"
    table.write_bytes(MIMIC.read_bytes())
    with pytest.raises(CxrAgeError, match="name MIMIC-IV's patients.csv as `patients`"):
        read_table(table)
    assert read_table(table, patients=str(MIMIC.parent / "patients.csv")).frame["age"].max() == 91


def test_padchest_ages_from_birth_years_and_projection():
    frame = _by_image(PADCHEST).reset_index()
    first = frame.iloc[0]
    assert (first["image"], first["age"], first["view"], first["findings"]) == (
        "0/20536686640136348236148679891455886468_k6ga29.png", 2015 - 1939, "PA", "pneumonia|copd signs")
    assert frame["view"].tolist() == ["PA", "LATERAL", "AP", "PA", "COSTAL", "AP", "EXCLUDE"]
    assert frame["excluded"].tolist() == ["", "lateral_view", "", "age_missing", "not_frontal", "", "not_frontal"]


def test_covid_collection_keeps_frontal_x_rays_with_an_age():
    frame = _by_image(COVID).reset_index()
    assert frame["view"].tolist() == ["PA", "AP", "LATERAL", "AP", "AXIAL", "AP", "PA"]
    assert frame["excluded"].tolist() == ["", "", "lateral_view", "age_missing", "not_chest_radiograph", "", ""]
    assert frame["image"][0] == "images/auntminnie-a-2020.jpeg"


def test_dicom_header_tables_rsna_and_openi():
    rsna = read_table(RSNA).frame
    assert sorted(rsna.loc[rsna["excluded"] == "implausible_age", "age"]) == [148, 150, 151, 153, 155]
    assert int(((rsna["age"] > 90) & (rsna["age"] <= 120)).sum()) == 4
    openi = _by_image(OPENI)
    dates = pd.read_csv(OPENI, dtype=str, keep_default_na=False).set_index("filename")
    one = dates.index[0]
    years = (pd.Timestamp(dates.loc[one, "Study Date"]) - pd.Timestamp(dates.loc[one, "Patient's Birth Date"])).days
    assert openi.loc[one.removeprefix("./"), "age"] == pytest.approx(years / 365.25)
    assert set(openi.loc[openi["view"] == "LATERAL", "excluded"]) <= {"lateral_view", "not_chest_radiograph"}
    assert set(openi.loc[openi["view"] == "", "excluded"]) == {"view_not_recorded"}
    assert openi.loc[openi["excluded"] == "not_chest_radiograph"].shape[0] == 2  # Body Part Examined EXTREMETY


def test_stats_names_the_dataset_and_every_implausible_age(tmp_path, capsys):
    out = tmp_path / "stats"
    result = call_cli(data.main, "stats", "--csv", str(NIH_2017_ROWS), "--out", str(out), capsys=capsys)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"cxr-age-data stats: using nih table {NIH_2017_ROWS} (detected from its columns)")
    assert "removed 16 images: implausible age (over 120 years: a data-entry error, not an old patient)" in lines
    assert "removed 35 images with age over 90" in lines  # 51 over 90 in the rows, 16 of them impossible
    assert sum(1 for line in lines if line.startswith("  nih row ") and ", age " in line) == 16
    assert any(line.endswith("00005567_000.png, age 412") for line in lines)
    removed = pd.read_csv(out / "removed.csv")
    assert removed["reason"].str.startswith("implausible age").sum() == 16
    assert removed["reason"].str.startswith("age over 90").sum() == 35
    assert json.loads((out / "summary.json").read_text())["counts"]["removed_implausible_age"] == 16


def test_stats_on_chexpert_reports_every_removal(tmp_path, capsys):
    out = tmp_path / "stats"
    result = call_cli(data.main, "stats", "--dataset", "chexpert", "--csv", str(CHEXPERT), "--out", str(out),
                      capsys=capsys)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("cxr-age-data stats: using chexpert table")
    assert "(named with --dataset)" in result.stdout.splitlines()[0]
    for fragment in ("read 423 images of 89 patients", "removed 32 images: age censored", "removed 3 images: age not",
                     "removed 51 images: lateral view", "removed 17 images: neither a PA nor an AP",
                     "patients in two splits: 0", "views: AP"):
        assert fragment in result.stdout, fragment
    assert (out / "age_histogram.png").stat().st_size > 5_000
    assert len(pd.read_csv(out / "removed.csv")) == 32 + 3 + 51 + 17


def test_generic_csv_warns_when_each_image_becomes_a_patient(tmp_path, capsys):
    table = tmp_path / "table.csv"
    table.write_text("image,age\nx.png,58\ny.png,60\n")
    result = call_cli(data.main, "stats", "--csv", str(table), "--out", str(tmp_path / "a"), capsys=capsys)
    assert result.returncode == 0, result.stderr
    warning = result.stdout.splitlines()[1]
    assert warning.startswith("WARNING: no patient id column") and "ITS OWN PATIENT" in warning
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["warnings"]


def test_generic_csv_finds_patient_folders_in_paths():
    """CheXpert's table read as a generic CSV: the patient folder in the path, not one patient per image."""
    table = read_table(CHEXPERT, dataset="csv")
    assert not table.warnings
    assert "patient folder" in table.notes[0]
    assert table.frame["patient_id"].nunique() == 89


def test_unknown_dataset_name_is_one_line(capsys):
    result = call_cli(data.main, "stats", "--dataset", "nope", capsys=capsys)
    assert result.returncode == 2 and "invalid choice" in result.stderr
    assert_one_line_error(call_cli(data.main, "stats", "--dataset", "mimic", capsys=capsys), "name it with --csv")
    with pytest.raises(CxrAgeError, match="unknown dataset 'nope'"):
        datasets.get("nope")


def test_a_table_read_as_the_wrong_dataset_names_the_missing_columns(tmp_path, capsys):
    result = call_cli(data.main, "stats", "--dataset", "padchest", "--csv", str(CHEXPERT), capsys=capsys)
    assert_one_line_error(result, "read as PadChest but lacks the column(s) ImageID, ImageDir")


def test_two_datasets_are_split_by_patient_within_each(tmp_path):
    config = DataConfig(csv=[str(CHEXPERT), str(MIMIC)], image_dir=[str(TABLES), str(MIMIC.parent)])
    selection = select(config)
    frame = assign_splits(selection.frame, seed=0)
    assert selection.dataset == "chexpert+mimic"
    assert set(frame["dataset"]) == {"chexpert", "mimic"}
    assert frame["patient_id"].str.match(r"^(chexpert|mimic):").all()
    assert frame.groupby("patient_id")["split"].nunique().max() == 1
    chexpert = frame[frame["dataset"] == "chexpert"]
    assert abs((chexpert["split"] == "train").mean() - 0.8) < 0.05  # each dataset 80/10/10 on its own
    with pytest.raises(CxrAgeError, match="2 tables .* but 1 image folder"):
        select(DataConfig(csv=[str(CHEXPERT), str(MIMIC)], image_dir=[str(TABLES)]))


def test_metrics_of_two_datasets_are_pooled_and_per_dataset():
    from cxr_age.stats.metrics import regression_metrics
    from cxr_age.tasks import REGRESS
    from cxr_age.workflows.evaluation import summary_lines

    frame = pd.DataFrame({"age": [30.0, 40, 50, 60, 70, 80], "predicted_age": [32.0, 41, 49, 70, 80, 90],
                          "patient_id": ["a", "b", "c", "d", "e", "f"], "group": [2, 3, 4, 5, 6, 7],
                          "view": "PA", "sex": ["M", "F"] * 3, "dataset": ["nih"] * 3 + ["chexpert"] * 3})
    metrics = regression_metrics(frame, train_median=50, draws=50)
    assert metrics["model"]["mae"]["value"] == pytest.approx((2 + 1 + 1 + 10 + 10 + 10) / 6)
    per = metrics["per_dataset"]
    assert per["nih"]["mae"]["value"] == pytest.approx(4 / 3) and per["chexpert"]["mae"]["value"] == 10
    assert per["chexpert"]["baseline_mae"] == pytest.approx(20) and per["nih"]["images"] == 3
    assert set(metrics["per_sex"]) == {"M", "F"} and set(metrics["per_view"]) == {"PA"}
    lines = summary_lines({"demo": False, "splits": {"test": metrics}}, REGRESS)
    assert any(line.strip().startswith("chexpert: mae 10.00") for line in lines)
    assert "per_dataset" not in regression_metrics(frame[frame["dataset"] == "nih"], 50, draws=50)
