"""Reaching the images in a hospital's archive: which instances get an age (`eligibility`), the result as a
DICOM SR (`age_report`), the DICOMweb pull (`dicomweb`, `pull`), the DICOM listener (`listener`, `studies`),
the delivery of results with retries and a dead-letter folder (`delivery`), and the ledger that makes a rerun
do nothing twice (`ledger`). Needs the `pacs` extra: pip install "cxr-age[pacs]"."""
