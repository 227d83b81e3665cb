"""The staff web app in Chromium, against a real `medicalpro serve`.

Usage: test_webapp.py BASE_URL. A new user registers a clinic (the API's
422 shown in French under the field), adds a practitioner, a secretary and
a patient, fills the clinic's address and SIRET, creates a catalogue item
and a category and assigns it, books two appointments (the second
overlaps: the refusal is shown on the slot), moves the first, drags it to
another slot and another practitioner's column, stretches it by its bottom
edge (an overlapping drop is refused on the slot), issues an invoice whose
printable view names the clinic's address and SIRET, adds acts to the
first appointment, lengthens it (an overlap is refused, a fitting length
spans its slots) and makes a quote of its acts and cancels it (the credit
note appears), downloads the GDPR export; the secretary cannot reach
medical records. Every screen is saved
to tests/browser/screenshots/. Prints the agenda's first load time and the
gzipped size of the app's assets.
"""

import gzip
import json
import re
import sys
import time
import uuid
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

BASE = sys.argv[1].rstrip("/")
SHOTS = Path(__file__).parent / "screenshots"
SHOTS.mkdir(exist_ok=True)
for old in SHOTS.glob("*.png"):
    old.unlink()
EMAIL = f"claire-{uuid.uuid4().hex[:8]}@cabinet-pasteur.fr"
SECRETARY = f"sophie-{uuid.uuid4().hex[:8]}@cabinet-pasteur.fr"
PASSWORD = "correct horse battery"
ASSETS = ["index.html", "app.css", "main.js", "api.js", "i18n.js", "dom.js", "auth.js",
          "patients.js", "patient.js", "agenda.js", "documents.js", "admin.js", "icon.svg"]

expect.set_options(timeout=15000)
step_number = 0


def shot(page, name):
    global step_number
    step_number += 1
    page.screenshot(path=str(SHOTS / f"{step_number:02d}-{name}.png"), full_page=True)


def new_context(browser, timezone="Europe/Paris"):
    context = browser.new_context(locale="fr-FR", timezone_id=timezone,
                                  viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "401" not in m.text
            and "403" not in m.text and "409" not in m.text and "422" not in m.text else None)
    return context, page, errors


def wait_agenda(page):
    page.wait_for_selector("body[data-ready=agenda]")


def main():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        context, page, errors = new_context(browser)

        # Sign-up.
        page.goto(BASE + "/")
        expect(page.get_by_role("heading", name=re.compile("Connexion"))).to_be_visible()
        shot(page, "login")
        page.get_by_role("link", name=re.compile("Créer un compte")).click()
        page.get_by_label("Nom du cabinet").fill("Cabinet Pasteur")
        page.get_by_label("Prénom").fill("Claire")
        page.get_by_label("Nom", exact=True).fill("Martin")
        page.get_by_label("E-mail").fill(EMAIL)
        page.get_by_label(re.compile("Mot de passe")).fill("short")
        page.get_by_role("button", name="Créer le cabinet").click()
        expect(page.locator("#register-form .field-error:not(:empty)")).to_have_text("Au moins 8 caractères.")
        shot(page, "register-field-error")
        page.get_by_label(re.compile("Mot de passe")).fill(PASSWORD)
        page.get_by_role("button", name="Créer le cabinet").click()
        wait_agenda(page)
        expect(page.get_by_text("Aucun praticien")).to_be_visible()

        # The refresh token is out of reach of page scripts; nothing stored.
        assert "medicalpro_refresh" not in page.evaluate("document.cookie")
        assert page.evaluate("localStorage.length + sessionStorage.length") == 0
        cookie = next(c for c in context.cookies() if c["name"] == "medicalpro_refresh")
        assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict", cookie
        assert cookie["path"] == "/api/v1/auth/refresh", cookie

        # Practitioner and secretary.
        page.get_by_role("link", name="Administration").click()
        form = page.locator("#practitioners-form")
        form.get_by_label("Nom", exact=True).fill("Pasteur")
        form.get_by_label("Prénom").fill("Louis")
        form.get_by_label("Spécialité").fill("Médecine générale")
        form.get_by_role("button", name="Créer").click()
        expect(page.get_by_role("cell", name="Louis Pasteur", exact=True)).to_be_visible()
        shot(page, "admin-practitioners")
        # A second practitioner, edited, for the clinic-wide day's columns.
        form.get_by_label("Nom", exact=True).fill("Curie")
        form.get_by_label("Prénom").fill("Marie")
        form.get_by_role("button", name="Créer").click()
        page.get_by_role("button", name="Modifier Marie Curie").click()
        expect(page.locator("#practitioners-form h2")).to_contain_text("Modifier le praticien")
        form.get_by_label("Spécialité").fill("Pédiatrie")
        form.get_by_role("button", name="Enregistrer").click()
        expect(page.get_by_role("cell", name="Pédiatrie", exact=True)).to_be_visible()
        shot(page, "admin-practitioner-edited")
        page.get_by_role("link", name="Équipe").click()
        form = page.locator("#users-form")
        form.get_by_label("Nom", exact=True).fill("Durand")
        form.get_by_label("Prénom").fill("Sophie")
        form.get_by_label("E-mail").fill(SECRETARY)
        form.get_by_label("Mot de passe").fill(PASSWORD)
        form.get_by_label("Rôle").select_option("secretary")
        form.get_by_role("button", name="Créer").click()
        expect(page.get_by_role("cell", name=SECRETARY, exact=True)).to_be_visible()
        shot(page, "admin-staff")
        # Settings: a wrong SIRET is said in French under its field, then
        # the clinic's address and SIRET are kept.
        page.get_by_role("link", name="Réglages").click()
        settings = page.locator("#settings-form")
        settings.get_by_label("Adresse", exact=True).fill("12 rue Pasteur")
        settings.get_by_label("Code postal").fill("75015")
        settings.get_by_label("Ville").fill("Paris")
        settings.get_by_label("SIRET").fill("732 829 320 00075")
        settings.get_by_role("button", name="Enregistrer").click()
        expect(page.locator("#settings-form [name=siret] ~ .field-error")).to_contain_text("SIRET invalide")
        shot(page, "admin-settings-field-error")
        settings.get_by_label("SIRET").fill("732 829 320 00074")
        settings.get_by_role("button", name="Enregistrer").click()
        expect(settings.get_by_text("Enregistré.")).to_be_visible()
        shot(page, "admin-settings")

        # Catalogue and categories end to end: a category made, an item
        # made, the category assigned to it, renamed; the item deactivated.
        page.get_by_role("link", name="Catégories").click()
        categories = page.locator("#categories-form")
        categories.get_by_label("Nom", exact=True).fill("Consultations")
        categories.get_by_role("button", name="Créer").click()
        expect(page.get_by_role("cell", name="Consultations", exact=True)).to_be_visible()
        page.get_by_role("link", name="Catalogue").click()
        catalogue = page.locator("#products-services-form")
        catalogue.get_by_label("Nom", exact=True).fill("Consultation G")
        catalogue.get_by_label("Prix HT (€)").fill("30")
        catalogue.get_by_role("button", name="Créer").click()
        expect(page.get_by_role("cell", name="Consultation G", exact=True)).to_be_visible()
        catalogue.get_by_label("Nom", exact=True).fill("Vaccin")
        catalogue.get_by_label("Prix HT (€)").fill("-1")
        catalogue.get_by_role("button", name="Créer").click()
        expect(page.locator("#products-services-form [name=unitPriceCents] ~ .field-error")).to_have_text("Montant invalide (positif ou nul).")
        catalogue.get_by_label("Prix HT (€)").fill("12")
        catalogue.get_by_role("button", name="Créer").click()
        expect(page.get_by_role("cell", name="Vaccin", exact=True)).to_be_visible()
        page.get_by_role("button", name="Modifier Consultation G").click()
        catalogue.get_by_label("Consultations").check()
        catalogue.get_by_label("Code").fill("CG")
        catalogue.get_by_role("button", name="Enregistrer").click()
        row = page.locator("#admin-catalogue tr").filter(has_text="Consultation G")
        expect(row).to_contain_text("Consultations")
        expect(row).to_contain_text("CG")
        page.get_by_role("button", name="Désactiver Vaccin").click()
        expect(page.locator("#admin-catalogue tr").filter(has_text="Vaccin")).to_contain_text("Inactif")
        shot(page, "admin-catalogue")
        page.get_by_role("link", name="Catégories").click()
        page.get_by_role("button", name="Modifier Consultations").click()
        categories.get_by_label("Nom", exact=True).fill("Consultations générales")
        categories.get_by_role("button", name="Enregistrer").click()
        expect(page.get_by_role("cell", name="Consultations générales", exact=True)).to_be_visible()
        shot(page, "admin-categories")
        page.get_by_role("link", name="Catalogue").click()
        expect(page.locator("#admin-catalogue tr").filter(has_text="Consultation G")).to_contain_text("Consultations générales")
        page.get_by_role("link", name="Modèles de consentement").click()
        page.locator("#consent-templates-form").get_by_label("Titre").fill("Soins courants")
        page.locator("#consent-templates-form").get_by_label("Texte").fill("J'accepte les soins.")
        page.locator("#consent-templates-form").get_by_role("button", name="Créer").click()
        expect(page.get_by_role("cell", name="Soins courants", exact=True)).to_be_visible()
        page.get_by_role("button", name="Modifier Soins courants").click()
        page.locator("#consent-templates-form").get_by_label("Texte").fill("J'accepte les soins courants.")
        page.locator("#consent-templates-form").get_by_role("button", name="Enregistrer").click()
        expect(page.get_by_role("cell", name="v1", exact=True)).to_be_visible()
        shot(page, "admin-templates")

        # Patient: the API's 422 shown next to its field, then created.
        page.get_by_role("link", name="Patients", exact=True).click()
        page.get_by_role("button", name="Nouveau patient").click()
        form = page.locator("#patient-form")
        form.get_by_label("Nom", exact=True).fill("Dupont")
        form.get_by_label("Prénom").fill("Jean")
        form.get_by_label("Date de naissance").fill("1980-02-03")
        form.get_by_label("Téléphone").fill("0612345678")
        form.get_by_label(re.compile("NIR")).fill("180027512345699")
        form.get_by_role("button", name="Enregistrer").click()
        nir_error = page.locator("#patient-form [name=nationalId] ~ .field-error")
        expect(nir_error).not_to_be_empty()
        shot(page, "patient-field-error")
        form.get_by_label(re.compile("NIR")).fill("")
        form.get_by_role("button", name="Enregistrer").click()
        expect(page.get_by_role("heading", name="DUPONT Jean")).to_be_visible()
        assert "Dupont" not in page.url and "Jean" not in page.url, page.url
        # Edit: a 422 next to its field, then saved.
        page.get_by_role("button", name="Modifier").click()
        form = page.locator("#patient-form")
        form.get_by_label("E-mail").fill("not-an-email")
        form.get_by_role("button", name="Enregistrer").click()
        expect(page.locator("#patient-form [name=email] ~ .field-error")).not_to_be_empty()
        form.get_by_label("E-mail").fill("jean.dupont@example.fr")
        form.get_by_role("button", name="Enregistrer").click()
        expect(page.locator("#identity")).to_contain_text("jean.dupont@example.fr")
        record = page.locator("#patient-records")
        record.get_by_label("Titre").fill("Consultation initiale")
        record.get_by_label("Contenu").fill("Tension normale.")
        record.get_by_role("button", name="Ajouter au dossier").click()
        expect(record.get_by_text("Tension normale.")).to_be_visible()
        consents = page.locator("#patient-consents")
        consents.get_by_role("button", name="Demander un consentement").click()
        consents.get_by_role("button", name="Marquer signé").click()
        expect(consents.get_by_text("Signé")).to_be_visible()
        shot(page, "patient-page")
        page.get_by_role("link", name="Patients", exact=True).click()
        page.get_by_label(re.compile("Rechercher un patient")).fill("dup")
        expect(page.locator("#patient-results").get_by_text("DUPONT Jean")).to_be_visible()
        assert "dup" not in page.url
        shot(page, "patients-search")

        # The agenda's first load, in a fresh browser (cold cache), the
        # session resumed from the refresh cookie.
        cookies = context.cookies()
        context.close()
        context, page, errors2 = new_context(browser)
        errors += errors2
        context.add_cookies(cookies)
        started = time.monotonic()
        page.goto(BASE + "/#/agenda")
        wait_agenda(page)
        wall_ms = (time.monotonic() - started) * 1000
        mark_ms = page.evaluate("performance.getEntriesByName('agenda-rendered')[0].startTime")
        shot(page, "agenda-day-empty")
        page.locator("#agenda-practitioner").select_option(label="Louis Pasteur")

        # Book 09:00, then an overlapping 09:00: refused on the slot.
        def book(slot_time, name="Dupont"):
            page.locator(f"button.free[data-slot$='T{slot_time}']").first.click()
            booking = page.locator("#booking-form")
            booking.get_by_label("Patient").fill(name)
            page.get_by_role("option", name=re.compile("DUPONT Jean")).click()
            booking.get_by_label("Motif").fill("Contrôle")
            booking.get_by_role("button", name="Créer").click()

        book("09:00")
        expect(page.locator(".appt").filter(has_text="DUPONT Jean")).to_have_count(1)
        shot(page, "agenda-booked")
        book("09:00")
        expect(page.locator(".slot-error")).to_contain_text("chevauche")
        expect(page.locator("#booking-form .banner")).to_contain_text("Créneau déjà pris")
        shot(page, "agenda-overlap-refused")

        # Move the first to 10:30, then confirm it.
        page.get_by_role("button", name="Annuler").click()
        page.locator(".appt").first.click()
        page.locator("#move-form input").fill(page.locator("#move-form input").input_value()[:11] + "10:30")
        page.get_by_role("button", name="Déplacer", exact=True).click()
        expect(page.locator("button.free[data-slot$='T10:30']").locator("xpath=..").locator(".appt")).to_have_count(1)
        page.locator(".appt").first.click()
        page.get_by_role("button", name="Confirmer").click()
        expect(page.locator(".appt .appt-status")).to_have_text("Confirmé")
        shot(page, "agenda-moved-confirmed")

        # Drag it from 10:30 to 14:00, then to Marie Curie's column at 15:00.
        def cell(slot_time, column=0):
            return page.locator(f"button.free[data-slot$='T{slot_time}']").nth(column).locator("xpath=..")

        page.locator("#agenda-practitioner").select_option("")
        columns = page.locator(".col-head")
        expect(columns).to_have_count(2)
        curie = [columns.nth(i).inner_text() for i in range(2)].index("Marie Curie")
        pasteur = 1 - curie
        page.locator(".appt").first.drag_to(cell("14:00", pasteur))
        expect(cell("14:00", pasteur).locator(".appt")).to_have_count(1)
        expect(page.locator(".appt .appt-time")).to_have_text("14:00–14:30")
        page.locator(".appt").first.drag_to(cell("15:00", curie))
        expect(cell("15:00", curie).locator(".appt")).to_have_count(1)
        expect(page.locator("#move-form select option:checked")).to_have_text("Marie Curie")
        shot(page, "agenda-dragged-to-another-practitioner")
        # Stretch it by its bottom edge to 16:00 (two slots more).
        page.locator(".appt .resize-handle").drag_to(cell("15:30", curie))
        expect(page.locator("#appt-length")).to_have_text("Durée : 60 min")
        expect(cell("15:30", curie).locator(".appt-cont")).to_have_count(1)
        shot(page, "agenda-drag-resized")
        # A second appointment at 16:30 with her; stretching the first over it is refused on the slot.
        page.locator("#agenda-practitioner").select_option(label="Marie Curie")
        book("16:30")
        expect(page.locator(".appt")).to_have_count(2)
        page.locator(".appt-cont .resize-handle").drag_to(cell("16:30"))
        expect(cell("16:30").locator(".slot-error")).to_contain_text("chevauche")
        shot(page, "agenda-drag-overlap-refused")
        # And dropping the first onto it is refused too; both stay.
        page.locator(".appt").first.drag_to(cell("16:30"))
        expect(cell("16:30").locator(".slot-error")).to_contain_text("Créneau déjà pris")
        expect(page.locator(".appt .appt-time").first).to_have_text("15:00–16:00")
        # Back to 10:30 with Louis Pasteur by the keyboard path (the panel's fields).
        page.locator(".appt").first.click()
        page.locator("#move-form input").fill(page.locator("#move-form input").input_value()[:11] + "10:30")
        page.locator("#move-form select").select_option(label="Louis Pasteur")
        page.get_by_role("button", name="Déplacer", exact=True).click()
        expect(page.locator(".appt")).to_have_count(1)
        page.locator("#agenda-practitioner").select_option(label="Louis Pasteur")
        page.locator(".appt").first.click()
        page.locator("#resize-form input").fill("30")
        page.get_by_role("button", name="Changer la durée").click()
        expect(page.locator("#appt-length")).to_have_text("Durée : 30 min")
        expect(page.locator(".appt .appt-time")).to_have_text("10:30–11:00")
        page.locator("#agenda-view").select_option("week")
        expect(page.locator(".col-head")).to_have_count(6)
        shot(page, "agenda-week")

        # Invoice: create, issue (number), printable view, cancel (credit note).
        page.get_by_role("link", name="Devis et factures").click()
        page.get_by_role("button", name="Nouveau document").click()
        form = page.locator("#document-form")
        form.get_by_label("Patient").fill("Dupont")
        page.get_by_role("option", name=re.compile("DUPONT Jean")).click()
        form.get_by_label("Désignation").fill("Consultation de médecine générale")
        form.get_by_label("Prix unitaire HT (€)").fill("30")
        form.get_by_role("button", name="Créer").click()
        expect(page.locator("#doc-number")).to_have_text(re.compile("Brouillon"))
        page.get_by_role("button", name="Émettre").click()
        expect(page.locator("#doc-number")).to_have_text(re.compile(r"^INV-\d{4}-0001$"))
        expect(page.locator("#doc-total")).to_contain_text("30,00")
        shot(page, "invoice-issued")
        page.get_by_role("link", name="Version imprimable").click()
        expect(page.locator("#printable-sheet")).to_contain_text("261-4-1°")
        expect(page.locator("#printable-sheet")).to_contain_text("Cabinet Pasteur")
        expect(page.locator("#sheet-seller address")).to_contain_text("12 rue Pasteur")
        expect(page.locator("#sheet-seller address")).to_contain_text("75015 Paris")
        expect(page.locator("#sheet-seller")).to_contain_text("SIRET : 732 829 320 00074")
        shot(page, "invoice-printable")
        page.get_by_role("link", name=re.compile("Retour")).click()
        page.once("dialog", lambda d: d.accept())
        page.get_by_role("button", name=re.compile("Annuler la facture")).click()
        expect(page.locator("#credit-note")).to_contain_text(re.compile(r"Avoir AV-\d{4}-0001"))
        expect(page.locator("#doc-status")).to_have_text("Annulé")
        shot(page, "invoice-cancelled-credit-note")
        page.locator("#credit-note a").click()
        expect(page.locator("#doc-number")).to_have_text(re.compile(r"^AV-\d{4}-0001$"))
        shot(page, "credit-note")

        # Quote: issue (its number), accepted, converted into an invoice.
        page.get_by_role("link", name=re.compile("Devis et factures")).first.click()
        page.get_by_role("button", name="Nouveau document").click()
        form = page.locator("#document-form")
        form.locator("#document-type").select_option("quote")
        form.get_by_label("Patient").fill("Dupont")
        page.get_by_role("option", name=re.compile("DUPONT Jean")).click()
        form.get_by_label("Désignation").fill("Bilan de santé")
        form.get_by_label("Prix unitaire HT (€)").fill("80")
        form.get_by_role("button", name="Créer").click()
        expect(page.locator("#doc-number")).to_have_text(re.compile("Brouillon"))
        page.get_by_role("button", name="Émettre").click()
        expect(page.locator("#doc-number")).to_have_text(re.compile(r"^Q-\d{4}-0001$"))
        page.get_by_role("button", name="Accepté par le patient").click()
        page.get_by_role("button", name="Convertir en facture").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Facture Brouillon")
        page.get_by_role("button", name="Émettre").click()
        expect(page.locator("#doc-number")).to_have_text(re.compile(r"^INV-\d{4}-0002$"))
        expect(page.get_by_text(re.compile(r"Devis Q-\d{4}-0001"))).to_be_visible()
        shot(page, "quote-converted")
        page.get_by_role("link", name=re.compile("← Devis et factures")).click()
        expect(page.locator("table.table tbody tr")).to_have_count(4)
        shot(page, "documents-list")

        # Acts on the first appointment (10:30): two added, one removed.
        page.get_by_role("link", name="Agenda").click()
        page.locator("#agenda-view").select_option("day")
        expect(page.locator(".appt")).to_have_count(1)
        book("11:30")
        expect(page.locator(".appt")).to_have_count(2)
        page.locator(".appt").first.click()
        acts = page.locator("#appt-items")
        acts.get_by_label("Quantité").fill("2")
        acts.get_by_role("button", name="Ajouter l’acte").click()
        expect(acts.locator("tbody tr")).to_have_count(1)
        acts.get_by_role("button", name="Ajouter l’acte").click()
        expect(acts.locator("tbody tr")).to_have_count(2)
        acts.get_by_role("button", name="Retirer Consultation G").last.click()
        expect(acts.locator("tbody tr")).to_have_count(1)
        expect(acts.locator("tbody tr")).to_contain_text("× 2")
        expect(page.locator("#items-total")).to_contain_text("60,00")
        shot(page, "appointment-items")

        # Its length: 90 minutes overlaps the 11:30 (refused, in words), 60 fits
        # and the appointment spans the 11:00 slot too.
        page.locator("#resize-form input").fill("90")
        page.get_by_role("button", name="Changer la durée").click()
        expect(page.locator(".agenda-panel .banner")).to_contain_text("Créneau déjà pris")
        shot(page, "appointment-resize-refused")
        page.locator("#resize-form input").fill("60")
        page.get_by_role("button", name="Changer la durée").click()
        expect(page.locator("#appt-length")).to_have_text("Durée : 60 min")
        expect(page.locator(".appt-cont")).to_have_count(1)
        expect(page.locator("button.free[data-slot$='T11:00']").locator("xpath=..").locator(".appt-cont")).to_have_count(1)
        shot(page, "appointment-resized")

        # A quote made of its acts, a draft, shown at once.
        page.get_by_role("button", name="Créer un devis avec ces actes").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Devis Brouillon")
        expect(page.locator("#doc-total")).to_contain_text("60,00")
        expect(page.get_by_role("cell", name="Consultation G", exact=True)).to_be_visible()
        shot(page, "quote-from-appointment")

        # GDPR: the export downloads as a file; erasure is refused, explained.
        page.get_by_role("link", name="Patients", exact=True).click()
        page.locator("#patient-results a").first.click()
        with page.expect_download() as download:
            page.get_by_role("button", name=re.compile("Exporter")).click()
        exported = json.loads(Path(download.value.path()).read_text())
        assert "Dupont" in json.dumps(exported), list(exported)
        assert download.value.suggested_filename.endswith(".json")
        page.once("dialog", lambda d: d.accept())
        page.get_by_role("button", name=re.compile("Effacer")).click()
        expect(page.locator("#gdpr-result")).to_contain_text("la loi oblige")
        expect(page.locator("#gdpr-result")).to_contain_text("Dossier médical")
        shot(page, "gdpr-retention")
        page.get_by_role("link", name="Administration").click()
        page.get_by_role("link", name="Journal d’audit").click()
        page.locator("#admin-audit select").first.select_option("export")
        page.get_by_role("button", name="Filtrer").click()
        expect(page.locator("#admin-audit tbody tr").first).to_contain_text("export")
        shot(page, "admin-audit")

        # English, then sign-out ends the session on the server.
        page.get_by_role("button", name="English").click()
        expect(page.get_by_role("link", name="Schedule")).to_be_visible()
        shot(page, "english")
        page.get_by_role("button", name="Français").click()
        page.get_by_role("button", name="Se déconnecter").click()
        expect(page.get_by_text("Vous êtes déconnecté.")).to_be_visible()
        assert not any(c["name"] == "medicalpro_refresh" for c in context.cookies())
        context.add_cookies([c for c in cookies if c["name"] == "medicalpro_refresh"])
        page.reload()
        expect(page.get_by_role("heading", name=re.compile("Connexion"))).to_be_visible()

        # Wrong password.
        page.get_by_label("E-mail").fill(EMAIL)
        page.get_by_label("Mot de passe").fill("not the password")
        page.get_by_role("button", name="Se connecter").click()
        expect(page.locator(".banner.error")).to_have_text("E-mail ou mot de passe incorrect.")
        shot(page, "login-wrong-password")
        # Throttled, with its wait.
        for _ in range(5):
            page.get_by_role("button", name="Se connecter").click()
            page.wait_for_timeout(300)
        expect(page.locator(".banner.error")).to_contain_text(re.compile(r"Trop de tentatives. Réessayez dans \d+ (min|s)"))
        shot(page, "login-throttled")
        context.close()

        # The secretary sees no medical records, and the API refuses them.
        # Her browser is in New York: the agenda keeps the clinic's time.
        context, page, errors3 = new_context(browser, "America/New_York")
        errors += errors3
        page.goto(BASE + "/")
        page.get_by_label("E-mail").fill(SECRETARY)
        page.get_by_label("Mot de passe").fill(PASSWORD)
        page.get_by_role("button", name="Se connecter").click()
        wait_agenda(page)
        expect(page.locator(".appt .appt-time").first).to_have_text("10:30–11:30")
        expect(page.locator("button.free[data-slot$='T10:30']").locator("xpath=..").locator(".appt")).to_have_count(1)
        page.locator(".appt").first.click()
        expect(page.locator("#move-form input")).to_have_value(re.compile("T10:30$"))
        shot(page, "secretary-agenda-clinic-time")
        expect(page.get_by_role("link", name="Administration")).to_have_count(0)
        page.get_by_role("navigation").get_by_role("link", name="Patients", exact=True).click()
        page.locator("#patient-results a").first.click()
        expect(page.get_by_role("heading", name="DUPONT Jean")).to_be_visible()
        expect(page.locator("#patient-records")).to_have_count(0)
        expect(page.locator("#patient-gdpr")).to_have_count(0)
        shot(page, "secretary-patient")
        api = context.request
        token = api.post(BASE + "/api/v1/auth/login",
                         data={"email": SECRETARY, "password": PASSWORD}).json()["data"]["accessToken"]
        refused = api.get(BASE + "/api/v1/medical-records", headers={"Authorization": f"Bearer {token}"})
        assert refused.status == 403, refused.status
        assert refused.headers["cache-control"] == "no-store"
        context.close()

        # Figures: the assets' gzipped size.
        sizes = {}
        for name in ASSETS:
            body = api_get(p, BASE + "/app/" + name)
            sizes[name] = (len(body), len(gzip.compress(body, 9)))
        browser.close()

    assert not errors, errors
    raw = sum(s[0] for s in sizes.values())
    packed = sum(s[1] for s in sizes.values())
    print(f"agenda first load: {mark_ms:.0f} ms from navigation to the agenda rendered "
          f"(wall clock incl. browser start of the page: {wall_ms:.0f} ms)")
    print(f"assets: {len(sizes)} files, {raw / 1024:.1f} KiB, {packed / 1024:.1f} KiB gzipped")
    print(f"screenshots: {SHOTS}")
    print("browser test passed")


def api_get(p, url):
    request = p.request.new_context()
    body = request.get(url).body()
    request.dispose()
    return body


if __name__ == "__main__":
    main()
